"""The audit log: who changed what in a team. Each domain operation that changes a team's
data writes its own entry, in the transaction of the change: both are committed or
neither is.

An operation made by the product itself (a rule, a schedule, the worker) has no `Actor`
and writes no entry; one asked for by a person names them.
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.store.db import utcnow
from scheduler.store.models import AuditEntry, User

_counted = threading.local()


@dataclass(frozen=True)
class Actor:
    """A member asking for a change: in which team, who, and how (`api`, `web`,
    `sign-in`)."""

    team_id: int
    user_id: int
    via: str

    @property
    def by(self) -> str:
        """How message timelines name them (`api:7`, `ui:7`)."""
        return f"{'ui' if self.via == 'web' else self.via}:{self.user_id}"


def record(session: Session, actor: Actor | None, action: str, target: str | None = None,
           detail: dict | None = None, now: dt.datetime | None = None) -> None:
    """Add the entry for a change made in `session` (nothing without an actor).

    `detail` holds what is worth keeping of the request: field names, a role, an address
    invited; never content, recipients' addresses or secrets.
    """
    if actor is None:
        return
    session.add(AuditEntry(team_id=actor.team_id, user_id=actor.user_id, via=actor.via,
                           action=action, target=target, detail=detail or None,
                           at=now or utcnow()))
    _counted.entries = getattr(_counted, "entries", 0) + 1


def entries_written() -> int:
    """How many entries this thread has added (the app's self-check compares a request's
    count before and after: a change with no entry fails loudly)."""
    return getattr(_counted, "entries", 0)


def audit_log(session: Session, team_id: int, *, before: int | None = None,
              limit: int = 100) -> tuple[list[dict], int | None]:
    """Newest entries first with who made them; returns (entries, cursor for older)."""
    query = (select(AuditEntry, User.email).outerjoin(User, User.id == AuditEntry.user_id)
             .where(AuditEntry.team_id == team_id).order_by(AuditEntry.id.desc())
             .limit(limit + 1))
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    out = [{"id": e.id, "at": e.at.isoformat(), "user": email, "via": e.via,
            "action": e.action, "target": e.target, "detail": e.detail} for e, email in rows]
    return out, (rows[-1][0].id if more and rows else None)
