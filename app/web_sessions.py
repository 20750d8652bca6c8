"""Browser sessions that end on the server: the cookie holds a random id whose SHA-256 is
a row of web_session; signing out revokes that row, "sign out everywhere" all of the
user's, so a copied cookie stops working at once."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scheduler.store.models import WebSession


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, user_id: int, now: dt.datetime) -> str:
    """A new session for the user; returns the id for the cookie."""
    token = secrets.token_urlsafe(32)
    session.add(WebSession(id=_key(token), user_id=user_id, created_at=now))
    return token


def valid(session: Session, token: str | None, user_id: int) -> bool:
    """Whether the cookie's session is the user's and not signed out."""
    if not token:
        return False
    return session.scalar(select(WebSession.id).where(
        WebSession.id == _key(token), WebSession.user_id == user_id,
        WebSession.revoked_at.is_(None))) is not None


def end(session: Session, token: str | None, now: dt.datetime) -> None:
    """Sign this session out."""
    if token:
        session.execute(update(WebSession).where(WebSession.id == _key(token),
                                                 WebSession.revoked_at.is_(None))
                        .values(revoked_at=now))


def end_all(session: Session, user_id: int, now: dt.datetime) -> int:
    """Sign every session of the user out; returns how many."""
    return session.execute(update(WebSession).where(
        WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)).rowcount
