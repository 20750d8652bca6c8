"""Users, teams and connected Gmail accounts: sign-in and token storage."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scheduler import queue
from scheduler.crypto import TokenCipher
from scheduler.models import GmailAccount, Membership, Team, User


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, in which team, with which account."""

    user_id: int
    team_id: int
    account_id: int
    email: str
    newly_created: bool


def sign_in(session: Session, cipher: TokenCipher, *, email: str, token_info: dict,
            scopes: list[str], now: dt.datetime, display_name: str | None = None) -> SignedIn:
    """Find or create the user for a Google address; connect or reconnect their mailbox."""
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
    team_id = user.personal_team_id
    account = session.scalar(select(GmailAccount).where(GmailAccount.email == email))
    if account is not None and not token_info.get("refresh_token"):
        # Google omits the refresh token on a repeat consent; keep the one we have.
        old = cipher.decrypt(account.token_blob)
        token_info = {**token_info, "refresh_token": old.get("refresh_token")}
    blob = cipher.encrypt(token_info)
    if account is None:
        account = GmailAccount(team_id=team_id, user_id=user.id, email=email,
                               display_name=display_name, token_blob=blob,
                               scopes=" ".join(scopes), status="connected", created_at=now,
                               updated_at=now)
        session.add(account)
        session.flush()
    else:
        account.token_blob = blob
        account.scopes = " ".join(scopes)
        account.status = "connected"
        account.status_reason = None
        account.updated_at = now
        # What waited for this reconnection goes out now.
        queue.release_held(session, account.id, "reconnect", now,
                           f"{email} reconnected")
    return SignedIn(user.id, team_id, account.id, email, created)


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
    return session.execute(stmt.values(status="reconnect", status_reason=reason,
                                       updated_at=now)).rowcount == 1


def mark_daily_limited(session: Session, account_id: int, until: dt.datetime,
                       now: dt.datetime) -> None:
    """Gmail refused for the daily limit: the account sends nothing more until `until`."""
    session.execute(update(GmailAccount).where(GmailAccount.id == account_id)
                    .values(limited_until=until, updated_at=now))


def disconnect(session: Session, cipher: TokenCipher, account: GmailAccount,
               now: dt.datetime, revoke) -> bool:
    """Forget an account's tokens after revoking its grant at Google (`revoke(token)`).

    Its queued messages are held until someone connects it again. Returns whether Google
    accepted the revocation (a grant it no longer knows counts as revoked, too).
    """
    info = cipher.decrypt(account.token_blob)
    token = info.get("refresh_token") or info.get("token")
    accepted = bool(token) and revoke(token)
    account.token_blob = cipher.encrypt({})
    account.status = "disconnected"
    account.status_reason = f"disconnected by its owner on {now.date().isoformat()}"
    account.updated_at = now
    return accepted
