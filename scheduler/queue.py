"""The queue's queries, in one place: claim, finish, reschedule, and record events.

Every state change is conditional on the state it expects and reports whether a row moved,
so two workers, or a worker and a user's cancel, can never both win.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, true, update
from sqlalchemy.orm import Session

from scheduler.models import GmailAccount, Message, MessageEvent

DUE_STATUSES = ("scheduled", "retry_wait")
# States a user may still change; once 'sending' starts, only the worker moves a message.
OPEN_STATUSES = ("draft", "scheduled", "held", "retry_wait")


@dataclass(frozen=True)
class Claim:
    """A message this worker may now send, until `lease_until`."""

    message_id: str
    token: str
    lease_until: dt.datetime
    needs_reconcile: bool
    attempts: int
    account_id: int


def record_event(session: Session, message_id: str, type_: str, at: dt.datetime,
                 detail: dict | None = None) -> None:
    """Append one event to a message's timeline."""
    session.add(MessageEvent(message_id=message_id, type=type_, at=at, detail=detail))


def claim_due(session: Session, now: dt.datetime, lease_seconds: float,
              limit: int, exclude_accounts: set[int] | frozenset = frozenset()) -> list[Claim]:
    """Atomically lease up to `limit` due messages, oldest due first.

    Due: scheduled or retry_wait with release_at <= now; held with a hold_until that has
    passed (a daily limit's window reopened); or 'sending' whose lease expired (a worker
    died mid-send). The latter come back with needs_reconcile set, because the SET clause
    reads the row's old status: that send may already have left.
    """
    token = secrets.token_hex(16)
    lease_until = now + dt.timedelta(seconds=lease_seconds)
    due = (
        select(Message.id)
        .where(or_(
            and_(Message.status.in_(DUE_STATUSES), Message.release_at <= now),
            and_(Message.status == "held", Message.hold_until <= now),
            and_(Message.status == "sending", Message.lease_until < now),
        ))
        .where(Message.account_id.not_in(exclude_accounts) if exclude_accounts else true())
        .order_by(Message.release_at, Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Message)
        .where(Message.id.in_(due.scalar_subquery()))
        .values(
            needs_reconcile=or_(Message.needs_reconcile, Message.status == "sending"),
            status="sending",
            lease_until=lease_until,
            claim_token=token,
            attempts=Message.attempts + 1,
            hold_kind=None,
            hold_until=None,
            updated_at=now,
        )
        .returning(Message.id, Message.needs_reconcile, Message.attempts, Message.account_id)
        .execution_options(synchronize_session=False)
    )
    claims = [Claim(row.id, token, lease_until, bool(row.needs_reconcile), row.attempts,
                    row.account_id) for row in session.execute(stmt)]
    for claim in claims:
        record_event(session, claim.message_id, "sending", now,
                     {"attempt": claim.attempts, "reconcile": claim.needs_reconcile})
    return claims


def _finish(session: Session, claim: Claim, now: dt.datetime, event: str,
            detail: dict | None, **values) -> bool:
    stmt = (
        update(Message)
        .where(Message.id == claim.message_id, Message.status == "sending",
               Message.claim_token == claim.token)
        .values(lease_until=None, claim_token=None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    moved = session.execute(stmt).rowcount == 1
    if moved:
        record_event(session, claim.message_id, event, now, detail)
    return moved


def mark_sent(session: Session, claim: Claim, now: dt.datetime, gmail_id: str,
              thread_id: str, subject: str, reconciled: bool = False) -> bool:
    """sending → sent, with Gmail's ids."""
    detail = {"gmail_message_id": gmail_id, "thread_id": thread_id}
    if reconciled:
        detail["reconciled"] = True
    return _finish(session, claim, now, "sent", detail, status="sent", sent_at=now,
                   gmail_message_id=gmail_id, gmail_thread_id=thread_id, subject=subject,
                   needs_reconcile=False, error=None)


def mark_retry(session: Session, claim: Claim, now: dt.datetime, retry_at: dt.datetime,
               error: str, needs_reconcile: bool) -> bool:
    """sending → retry_wait until `retry_at`."""
    return _finish(session, claim, now, "retry_wait",
                   {"error": error, "retry_at": retry_at.isoformat()},
                   status="retry_wait", release_at=retry_at, error=error,
                   needs_reconcile=needs_reconcile)


def mark_held(session: Session, claim: Claim, now: dt.datetime, kind: str, reason: str,
              needs_reconcile: bool = False, until: dt.datetime | None = None) -> bool:
    """sending → held: it waits for a person (data, reconnection, a decision) or, with
    `until`, for a time (a daily limit's window)."""
    detail = {"kind": kind, "reason": reason}
    if until is not None:
        detail["until"] = until.isoformat()
    return _finish(session, claim, now, "held", detail, status="held", error=reason,
                   hold_kind=kind, hold_until=until, needs_reconcile=needs_reconcile)


def release_claim(session: Session, claim: Claim, now: dt.datetime) -> bool:
    """sending → scheduled without an attempt (the worker is stopping); due again at once."""
    return _finish(session, claim, now, "scheduled", {"reason": "worker stopped before "
                   "sending; released its claim"}, status="scheduled",
                   attempts=Message.attempts - 1)


def extend_lease(session: Session, claim: Claim, until: dt.datetime) -> bool:
    """Keep a claim while it waits for its pacing slot."""
    stmt = (update(Message)
            .where(Message.id == claim.message_id, Message.status == "sending",
                   Message.claim_token == claim.token)
            .values(lease_until=until).execution_options(synchronize_session=False))
    return session.execute(stmt).rowcount == 1


def reserve_send_slot(session: Session, account_id: int, now: dt.datetime,
                      interval: float) -> dt.datetime:
    """The time this send may start so the account stays within Gmail's per-user rate.

    The slot lives in the database so that every worker process paces the same account.
    """
    current = session.scalar(select(GmailAccount.next_send_at)
                             .where(GmailAccount.id == account_id).with_for_update())
    slot = max(current, now) if current else now
    session.execute(update(GmailAccount).where(GmailAccount.id == account_id)
                    .values(next_send_at=slot + dt.timedelta(seconds=interval))
                    .execution_options(synchronize_session=False))
    return slot


def sent_in_window(session: Session, account_id: int, since: dt.datetime) -> tuple[int, dt.datetime | None]:
    """How many messages the account sent since `since`, and the oldest of them."""
    count, oldest = session.execute(
        select(func.count(), func.min(Message.sent_at))
        .where(Message.account_id == account_id, Message.status == "sent",
               Message.sent_at >= since)).one()
    return count, (_aware(oldest) if oldest is not None else None)


def release_held(session: Session, account_id: int, kind: str, now: dt.datetime,
                 reason: str) -> int:
    """Held messages of one kind for an account become due now (e.g. after reconnecting)."""
    ids = session.scalars(select(Message.id).where(
        Message.account_id == account_id, Message.status == "held",
        Message.hold_kind == kind)).all()
    if not ids:
        return 0
    session.execute(update(Message).where(Message.id.in_(ids), Message.status == "held")
                    .values(status="scheduled", release_at=now, hold_kind=None,
                            hold_until=None, error=None, updated_at=now)
                    .execution_options(synchronize_session=False))
    for message_id in ids:
        record_event(session, message_id, "scheduled", now, {"reason": reason})
    return len(ids)


def mark_failed(session: Session, claim: Claim, now: dt.datetime, error: str) -> bool:
    """sending → failed, permanently, with Gmail's reason."""
    return _finish(session, claim, now, "failed", {"error": error}, status="failed",
                   error=error, needs_reconcile=False)


def transition(session: Session, message_id: str, team_id: int, from_statuses,
               to_status: str, now: dt.datetime, detail: dict | None = None,
               **values) -> bool:
    """A user's state change (cancel, send now, reschedule), only from `from_statuses`."""
    stmt = (
        update(Message)
        .where(Message.id == message_id, Message.team_id == team_id,
               Message.status.in_(tuple(from_statuses)))
        .values(status=to_status, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    moved = session.execute(stmt).rowcount == 1
    if moved:
        record_event(session, message_id, to_status, now, detail)
    return moved


def next_wakeup(session: Session) -> dt.datetime | None:
    """The earliest time a message becomes due (including expiring leases), or None."""
    due = session.scalar(select(func.min(Message.release_at))
                         .where(Message.status.in_(DUE_STATUSES)))
    lease = session.scalar(select(func.min(Message.lease_until))
                           .where(Message.status == "sending"))
    held = session.scalar(select(func.min(Message.hold_until))
                          .where(Message.status == "held"))
    times = [_aware(t) for t in (due, lease, held) if t is not None]
    return min(times) if times else None


def _aware(value) -> dt.datetime:
    # func.min bypasses the column type on SQLite and returns text or a naive datetime.
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
