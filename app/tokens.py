"""API tokens: shown once, stored as SHA-256."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scheduler.store import audit
from scheduler.store.audit import Actor
from scheduler.store.models import ApiToken, Membership, User

PREFIX = "mr_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UnknownUser(Exception):
    """No user has signed in with that address yet."""


def create_token(session: Session, email: str, name: str, now: dt.datetime,
                 team_id: int | None = None, actor: Actor | None = None) -> str:
    """Create a token for the user whose Google account is `email`, acting in `team_id`
    (default: their personal team); returns it in clear. With an `actor` (made in the web
    app, not by the CLI) the team's audit log says so."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise UnknownUser(f"no user {email}: sign in with that Google account once first")
    team_id = team_id or user.personal_team_id
    if session.get(Membership, (team_id, user.id)) is None:
        raise UnknownUser(f"{email} is not a member of team {team_id}")
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, team_id=team_id, name=name,
                         token_hash=_hash(token), created_at=now))
    if actor is not None:
        session.flush()
        audit.record(session, actor, "created an API token", None,
                     {"name": name} if name else None, now)
    return token


def revoke_token(session: Session, actor: Actor, token: ApiToken, now: dt.datetime) -> None:
    """Revoke a token (the caller found it among those it may see)."""
    token.revoked_at = now
    audit.record(session, actor, "revoked an API token", f"token {token.id}", None, now)


LAST_USED_GRANULARITY = dt.timedelta(minutes=1)


def authenticate(session: Session, token: str, now: dt.datetime) -> ApiToken | None:
    """The live token row for a presented token, or None (unknown, forged or revoked)."""
    if not token.startswith(PREFIX):
        return None
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token),
                                                 ApiToken.revoked_at.is_(None)))


def needs_touch(row: ApiToken, now: dt.datetime) -> bool:
    """Whether last_used_at is stale enough to be worth a write (at most once a minute)."""
    return row.last_used_at is None or now - row.last_used_at > LAST_USED_GRANULARITY


def touch(session: Session, token_id: int, now: dt.datetime) -> None:
    """Record that a token was used."""
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
