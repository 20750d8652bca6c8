"""Idempotency keys (the `Idempotency-Key` header Stripe uses) for requests that create.

The key's row is written in the same transaction as what the request creates, and its
answer with it: either both are committed or neither is. A retry with the same key and
the same request gets the first answer back; with another request, a 422. Two requests
with one key at the same moment: on PostgreSQL the second's insert waits for the first's
transaction on the unique index and then replays its answer; SQLite runs them one after
the other. Keys are kept for 24 hours per team.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler.errors import Conflict, InvalidInput
from scheduler.store.db import rowcount
from scheduler.store.models import IdempotencyKey

KEEP = dt.timedelta(hours=24)
# Only a CSV import commits a key before its answer (it runs in many transactions); one
# still unanswered after this long died with its process, and a retry may run again
# (an import is an upsert: running it twice changes nothing more).
ABANDONED = dt.timedelta(minutes=15)
MAX_KEY_CHARS = 255
HEADER = "Idempotency-Key"


class Replay(Exception):
    """The request was answered before: send `status` and `body` again."""

    def __init__(self, status: int, body: dict):
        super().__init__("replayed")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Claimed:
    """A key this request holds: its answer is stored with `remember`."""

    row_id: int


def fingerprint(*parts: bytes | str) -> str:
    """SHA-256 over what identifies a request (method, path, body)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def check_key(key: str) -> str:
    """The key as given, or InvalidInput naming the header."""
    if not key.strip() or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise InvalidInput(f"{HEADER} must be 1 to {MAX_KEY_CHARS} printable characters",
                           field=HEADER)
    return key


def _answer(row: IdempotencyKey, print_: str) -> None:
    if row.fingerprint != print_:
        raise InvalidInput(f"this {HEADER} was used with another request; use a new key "
                           f"for a new request", field=HEADER, code="idempotency_mismatch")
    if row.status_code is None:
        raise Conflict(f"a request with this {HEADER} is still being processed; send it "
                       f"again in a moment to get its answer", field=HEADER, retry_after=1)
    raise Replay(row.status_code, row.response or {})


def _find(session: Session, team_id: int, key: str) -> IdempotencyKey | None:
    # populate_existing: after a failed insert, read what the other request committed.
    return session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.team_id == team_id, IdempotencyKey.key == key)
        .execution_options(populate_existing=True))


def claim(session: Session, team_id: int, key: str, print_: str,
          now: dt.datetime) -> Claimed:
    """Hold `key` for this request in the caller's transaction, or raise: Replay (answered
    before), InvalidInput (the key went with another request), Conflict (still running)."""
    session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.team_id == team_id, IdempotencyKey.key == key,
        or_(IdempotencyKey.created_at < now - KEEP,
            and_(IdempotencyKey.status_code.is_(None),
                 IdempotencyKey.created_at < now - ABANDONED))))
    found = _find(session, team_id, key)
    if found is not None:
        _answer(found, print_)
    row = IdempotencyKey(team_id=team_id, key=key, fingerprint=print_, created_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # Another request with this key committed while ours waited on the unique index.
        found = _find(session, team_id, key)
        if found is None:  # it rolled back after all: the client may simply retry
            raise Conflict(f"a request with this {HEADER} failed at the same moment; send "
                           f"it again", field=HEADER, retry_after=1) from None
        _answer(found, print_)
    return Claimed(row.id)


def remember(session: Session, held: Claimed | None, status: int, body: dict) -> None:
    """Store the answer with the key (in the transaction that made what it describes)."""
    if held is not None:
        session.execute(update(IdempotencyKey).where(IdempotencyKey.id == held.row_id)
                        .values(status_code=status, response=body))


def forget(session: Session, held: Claimed | None) -> None:
    """Drop a key whose request failed outside one transaction (a CSV import)."""
    if held is not None:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == held.row_id))


def purge(session: Session, now: dt.datetime) -> int:
    """Delete keys older than 24 h; returns how many."""
    return rowcount(session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.created_at < now - KEEP)))
