"""What the Gmail add-on shows beside a mailbox: the queue's next releases and held mail,
what we sent a person and what became of it, and what is still to go in a Gmail thread.
Every query is scoped to one team."""
from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from scheduler.store import queue
from scheduler.store.models import Message

SHOWN = 5
_OUTCOMES = ("opened", "clicked", "replied", "bounced", "unsubscribed")


def next_releases(session: Session, team_id: int, limit: int = SHOWN) -> list[Message]:
    """The team's scheduled messages that go first."""
    return list(session.scalars(
        select(Message).where(Message.team_id == team_id, Message.status == "scheduled")
        .order_by(Message.release_at, Message.id).limit(limit)))


def held(session: Session, team_id: int, limit: int = SHOWN) -> tuple[list[Message], int]:
    """The team's held messages (newest first) and how many there are."""
    where = (Message.team_id == team_id, Message.status == "held")
    rows = list(session.scalars(select(Message).where(*where)
                                .order_by(Message.updated_at.desc()).limit(limit)))
    return rows, session.scalar(select(func.count()).select_from(Message).where(*where)) or 0


def _to(address: str):
    # to_addr is "Name <address>" or a bare address.
    address = address.lower()
    return or_(func.lower(Message.to_addr) == address,
               func.lower(Message.to_addr).like(f"%<{address}>"))


def sent_to(session: Session, team_id: int, address: str, limit: int = SHOWN) -> list[dict]:
    """The latest messages to `address`: subject, status, when, and what happened."""
    rows = list(session.scalars(
        select(Message).where(Message.team_id == team_id, _to(address))
        .order_by(Message.created_at.desc()).limit(limit)))
    out = []
    for m in rows:
        happened = {e.type for e in m.events if e.type in _OUTCOMES}
        out.append({"id": m.id, "subject": m.subject or m.subject_tpl, "status": m.status,
                    "at": m.sent_at or m.release_at, "outcomes": [o for o in _OUTCOMES
                                                                  if o in happened]})
    return out


def pending_in_thread(session: Session, team_id: int, thread_id: str) -> list[Message]:
    """Open messages that will go into this Gmail thread: replies queued in it, and the
    follow-up steps after anything of ours sent in it (however deep the sequence)."""
    open_ = (Message.team_id == team_id, Message.status.in_(queue.OPEN_STATUSES))
    found = {m.id: m for m in session.scalars(
        select(Message).where(*open_, Message.reply_thread_id == thread_id))}
    ours = set(session.scalars(select(Message.id).where(
        Message.team_id == team_id, Message.gmail_thread_id == thread_id)))
    frontier = ours | set(found)
    for _ in range(10):  # a sequence's steps, one level at a time
        if not frontier:
            break
        steps = list(session.scalars(select(Message).where(
            Message.team_id == team_id, Message.follows_id.in_(frontier))))
        frontier = {m.id for m in steps} - set(found) - ours
        for m in steps:
            if m.status in queue.OPEN_STATUSES:
                found.setdefault(m.id, m)
    return sorted(found.values(), key=lambda m: (m.release_at is None, m.release_at, m.id))
