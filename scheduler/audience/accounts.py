"""Users, teams and connected Gmail accounts: sign-in and token storage."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scheduler.audience import guard, teams
from scheduler.errors import Conflict
from scheduler.store import audit, queue
from scheduler.store.audit import Actor
from scheduler.store.crypto import TokenCipher
from scheduler.store.db import rowcount
from scheduler.store.models import GmailAccount, Membership, Team, User


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, in which team, with which account."""

    user_id: int
    team_id: int
    account_id: int
    email: str
    newly_created: bool
    joined: tuple[int, ...] = ()  # teams joined now through invitations


def sign_in(session: Session, cipher: TokenCipher, *, email: str, token_info: dict,
            scopes: list[str], now: dt.datetime, display_name: str | None = None,
            send_as: list[dict] | None = None) -> SignedIn:
    """Find or create the user for a Google address; connect or reconnect their mailbox
    (with its sendAs aliases when they could be read); join the teams that invited them."""
    email = email.strip().lower()
    user = session.scalar(select(User).where(User.email == email))
    created = user is None
    if user is None:
        team = Team(name=f"{email}'s team", created_at=now)
        session.add(team)
        session.flush()
        user = User(email=email, name=display_name, personal_team_id=team.id, created_at=now)
        session.add(user)
        session.flush()
        session.add(Membership(team_id=team.id, user_id=user.id, role="owner"))
    joined = tuple(teams.accept_invitations(session, user, now))
    team_id = user.personal_team_id
    if team_id is None:  # every user is made with a personal team
        raise LookupError(f"user {user.id} has no personal team")
    account = _grant(session, cipher, email=email, token_info=token_info, scopes=scopes,
                     now=now, owner=(team_id, user.id), display_name=display_name,
                     send_as=send_as)
    return SignedIn(user.id, team_id, account.id, email, created, joined)


def _grant(session: Session, cipher: TokenCipher, *, email: str, token_info: dict,
           scopes: list[str], now: dt.datetime, owner: tuple[int, int],
           display_name: str | None, send_as: list[dict] | None) -> GmailAccount:
    """Store a mailbox's new grant: a new account of `owner` (team, user), or the known
    account reconnected (what waited for it goes out)."""
    team_id, user_id = owner
    account = session.scalar(select(GmailAccount).where(GmailAccount.email == email))
    if account is not None and not token_info.get("refresh_token"):
        # Google omits the refresh token on a repeat consent; keep the one we have.
        old = cipher.decrypt(account.token_blob)
        token_info = {**token_info, "refresh_token": old.get("refresh_token")}
    blob = cipher.encrypt(token_info)
    if account is None:
        account = GmailAccount(team_id=team_id, user_id=user_id, email=email,
                               display_name=display_name, token_blob=blob,
                               scopes=" ".join(scopes), status="connected", created_at=now,
                               updated_at=now, send_as=send_as)
        session.add(account)
        session.flush()
    else:
        account.token_blob = blob
        account.scopes = " ".join(scopes)
        account.status = "connected"
        account.status_reason = None
        account.updated_at = now
        if send_as is not None:
            account.send_as = send_as
        # What waited for this reconnection goes out now.
        queue.release_held(session, account.id, "reconnect", now,
                           f"{email} reconnected")
    return account


def connect_account(session: Session, cipher: TokenCipher, *, user_id: int, team_id: int,
                    email: str, token_info: dict, scopes: list[str], now: dt.datetime,
                    send_as: list[dict] | None = None) -> GmailAccount:
    """Add another mailbox to a signed-in member (in the team they work in), without
    signing them in as its address; Conflict when another member connected it already."""
    email = email.strip().lower()
    known = session.scalar(select(GmailAccount).where(GmailAccount.email == email))
    if known is not None and known.user_id != user_id:
        raise Conflict(f"{email} is connected by another user; they can share it with the "
                       f"team from their Accounts page", field="account")
    return _grant(session, cipher, email=email, token_info=token_info, scopes=scopes,
                  now=now, owner=(team_id, user_id), display_name=None, send_as=send_as)


def save_refreshed_token(session: Session, cipher: TokenCipher, account_id: int,
                         token_info: dict, now: dt.datetime) -> bytes:
    """Store a silently refreshed access token (encrypted); returns what was stored."""
    blob = cipher.encrypt(token_info)
    session.execute(update(GmailAccount).where(GmailAccount.id == account_id)
                    .values(token_blob=blob, updated_at=now))
    return blob


def mark_reconnect_needed(session: Session, account_id: int, reason: str,
                          now: dt.datetime, grant: bytes | None = None) -> bool:
    """The grant is gone: the account waits for its owner to sign in again.

    With `grant` (the stored token that failed), only if that is still the stored one:
    a sign-in in the meantime brought a new grant, which is not known to be gone.
    """
    stmt = update(GmailAccount).where(GmailAccount.id == account_id)
    if grant is not None:
        stmt = stmt.where(GmailAccount.token_blob == grant)
    return rowcount(session.execute(stmt.values(status="reconnect", status_reason=reason,
                                       updated_at=now))) == 1


def mark_daily_limited(session: Session, account_id: int, until: dt.datetime,
                       now: dt.datetime) -> None:
    """Gmail refused for the daily limit: the account sends nothing more until `until`."""
    session.execute(update(GmailAccount).where(GmailAccount.id == account_id)
                    .values(limited_until=until, updated_at=now))


def grant_token(cipher: TokenCipher, account: GmailAccount) -> str | None:
    """The token whose revocation ends the account's grant at Google (refresh, else access)."""
    info = cipher.decrypt(account.token_blob)
    return info.get("refresh_token") or info.get("token")


def disconnect(session: Session, cipher: TokenCipher, account_id: int, seen_blob: bytes,
               now: dt.datetime, actor: Actor | None = None) -> bool:
    """Forget an account's tokens once its grant was revoked at Google (a call made before,
    outside any transaction). Its queued messages are held until someone connects it
    again. False when its owner signed in again meanwhile (`seen_blob` changed): that new
    grant is kept."""
    done = rowcount(session.execute(update(GmailAccount).where(
        GmailAccount.id == account_id, GmailAccount.token_blob == seen_blob).values(
        token_blob=cipher.encrypt({}), status="disconnected",
        status_reason=f"disconnected by its owner on {now.date().isoformat()}",
        updated_at=now))) == 1
    if done:
        audit.record(session, actor, "disconnected a Gmail account", f"account {account_id}",
                     None, now)
    return done


def set_daily_cap(session: Session, actor: Actor, account: GmailAccount, cap: int | None,
                  now: dt.datetime) -> None:
    """The account's own daily sending cap (None: the deployment's, else Gmail's)."""
    account.daily_cap = cap
    audit.record(session, actor, "changed an account's daily cap", f"account {account.id}",
                 {"daily_cap": cap}, now)


DAY = dt.timedelta(hours=24)
CONSUMER_DOMAINS = guard.PERSONAL_GMAIL  # consumer Gmail, as Gmail's limits name it
CONSUMER_DAILY_CAP = 500
WORKSPACE_DAILY_CAP = 2000


def default_daily_cap(email: str) -> int:
    """Gmail's documented daily sending limits: consumer accounts vs. Workspace."""
    domain = email.rpartition("@")[2].lower()
    return CONSUMER_DAILY_CAP if domain in CONSUMER_DOMAINS else WORKSPACE_DAILY_CAP


def daily_cap(account, configured_cap: int | None, now: dt.datetime | None = None) -> int:
    """How many messages the account may send in a rolling 24 h: its own cap, else the
    deployment's (`MAILRELEASE_DAILY_CAP`), else Gmail's default for its kind; lower
    while it warms up (`guard.WARMUP_STEPS`, from `now`)."""
    cap = account.daily_cap or configured_cap or default_daily_cap(account.email)
    ceiling = guard.warmup_ceiling(account, now) if now is not None else None
    return min(cap, ceiling) if ceiling is not None else cap


def account_states(session: Session, team_id: int, user_id: int, configured_cap: int | None,
                   now: dt.datetime) -> list[dict]:
    """The accounts the user can send from in the team, each with its state (healthy,
    needs reconnecting, disconnected, daily limit reached), the last 24 h's sends against
    its cap, its sendAs aliases, and whether it is the user's own and shared."""
    rows = []
    for account in session.scalars(teams.usable_accounts(team_id, user_id)):
        sent = queue.sent_since(session, account.id, now - DAY)
        cap = daily_cap(account, configured_cap, now)
        limited = account.limited_until is not None and account.limited_until > now
        state = ("needs reconnecting" if account.status == "reconnect" else
                 "disconnected" if account.status == "disconnected" else
                 "daily limit reached" if limited or sent >= cap else "healthy")
        rows.append({"id": account.id, "email": account.email, "state": state,
                     "reason": account.status_reason, "sent_24h": sent, "daily_cap": cap,
                     "limited_until": account.limited_until.isoformat() if limited else None,
                     "warmup_ceiling": guard.warmup_ceiling(account, now),
                     "paused_reason": account.paused_reason,
                     "watch_expires_at": account.watch_expires_at.isoformat()
                     if account.watch_expires_at else None,
                     "watch_error": account.watch_error,
                     "scopes": account.scope_list, "own": account.user_id == user_id,
                     "shared": team_id in teams.shared_with(session, account.id),
                     "send_as": [a for a in account.send_as or () if
                                 a["email"].lower() != account.email.lower()]})
    return rows
