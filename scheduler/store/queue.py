"""The queue's queries, in one place: claim, finish, reschedule, and record events.

Every state change is conditional on the state it expects and reports whether a row moved,
so two workers, or a worker and a user's cancel, can never both win.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from scheduler.store import transitions
from scheduler.store.db import rowcount
from scheduler.store.models import (
    Campaign,
    Contact,
    GmailAccount,
    Message,
    MessageEvent,
    OutcomeCount,
    Rule,
    table,
)
from scheduler.store.transitions import Status

# Queue operations run on an ORM Session (API) or a Core Connection (the worker's hot path).
Executor = Session | Connection

DUE_STATUSES = tuple(str(s) for s in transitions.DUE)
# States a user may still change; once 'sending' starts, only the worker moves a message.
OPEN_STATUSES = tuple(str(s) for s in transitions.OPEN)


# The release hot path runs these once per message: built once on the Core tables, with
# bind parameters (named b_* so they never clash with column names), they skip per-call
# statement construction and the ORM's bulk machinery.
_M = table(Message)
_E = table(MessageEvent)
_A = table(GmailAccount)
_MINE = and_(_M.c.id == bindparam("b_mid"), _M.c.status == "sending",
             _M.c.claim_token == bindparam("b_tok"))
_INSERT_EVENT = insert(_E)
_MARK_SENT = update(_M).where(_MINE).values(
    status=str(transitions.get("sent").target), sent_at=bindparam("b_now"),
    updated_at=bindparam("b_now"),
    lease_until=None, claim_token=None, gmail_message_id=bindparam("b_gid"),
    gmail_thread_id=bindparam("b_tid"), subject=bindparam("b_subject"),
    needs_reconcile=False, error=None)
_EXTEND_LEASE = update(_M).where(_MINE).values(lease_until=bindparam("b_until"))
# The last renewal before the Gmail request: from here on, the send may have left.
_IN_FLIGHT = update(_M).where(_MINE).values(lease_until=bindparam("b_until"),
                                            needs_reconcile=True)
# Whatever left counts against Gmail's quota, whatever happened to it later (a bounce):
# sent_at alone, so the count is read from the (account_id, sent_at) index only.
_SENT_SINCE = select(func.count()).where(
    _M.c.account_id == bindparam("b_account"), _M.c.sent_at >= bindparam("b_since"))
_NTH_LATEST_SENT = (select(_M.c.sent_at)
                    .where(_M.c.account_id == bindparam("b_account"),
                           _M.c.sent_at >= bindparam("b_since"))
                    .order_by(_M.c.sent_at.desc())
                    .limit(1).offset(bindparam("b_skip")))
_NEXT_SLOT = (select(_A.c.next_send_at).where(_A.c.id == bindparam("b_account"))
              .with_for_update())
_SET_SLOT = update(_A).where(_A.c.id == bindparam("b_account")).values(
    next_send_at=bindparam("b_next"))


@dataclass(frozen=True)
class Claim:
    """A message this worker may now send, until `lease_until`."""

    message_id: str
    token: str
    lease_until: dt.datetime
    needs_reconcile: bool
    attempts: int
    account_id: int
    # The message's columns as the claim returned them: while 'sending' nobody else may
    # change the row, so this snapshot is what goes out (no second read per message).
    message: Row | None = field(default=None, compare=False, repr=False)

    @property
    def row(self) -> Row:
        """The claimed message's columns (every claim the release gets carries them)."""
        if self.message is None:
            raise LookupError(f"claim of {self.message_id} carries no row")
        return self.message


# The outcomes the dashboard counts per hour (OutcomeCount), each once per message.
OUTCOMES = ("sent", "opened", "clicked", "replied", "bounced", "unsubscribed")


def record_event(session: Executor, message_id: str, type_: str,
                 at: dt.datetime, detail: dict | None = None) -> None:
    """Append one event to a message's timeline (works on a Session or a Core connection);
    a message's first event of an outcome also counts in its hour (OutcomeCount), in the
    same transaction."""
    if type_ in OUTCOMES:
        session.execute(_count_outcome(session), {
            "mid": message_id, "kind": type_, "hour": hour_of(at)})
    session.execute(_INSERT_EVENT, {"message_id": message_id, "type": type_, "at": at,
                                    "detail": detail})


def hour_of(at: dt.datetime) -> dt.datetime:
    """The UTC hour an outcome is counted in."""
    utc = at.astimezone(dt.UTC) if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


def _count_outcome(session: Executor):
    """INSERT … SELECT … ON CONFLICT: +1 in the hour's row, unless the message already
    has an event of this outcome (a second open is not a second opener)."""
    bind = session.get_bind() if isinstance(session, Session) else session
    dialect = bind.dialect.name
    if dialect not in _COUNT_OUTCOME:
        _C = table(OutcomeCount)
        make = pg_insert if dialect == "postgresql" else sqlite_insert
        source = select(_M.c.team_id, func.coalesce(_M.c.campaign_id, 0), bindparam("kind"),
                        bindparam("hour", type_=table(OutcomeCount).c.hour.type),
                        literal(1)).where(
            _M.c.id == bindparam("mid"),
            ~exists().where(_E.c.message_id == bindparam("mid"),
                            _E.c.type == bindparam("kind")))
        stmt = make(_C).from_select(["team_id", "campaign_id", "kind", "hour", "n"], source)
        _COUNT_OUTCOME[dialect] = stmt.on_conflict_do_update(
            index_elements=["team_id", "campaign_id", "kind", "hour"],
            set_={"n": _C.c.n + 1})
    return _COUNT_OUTCOME[dialect]


_COUNT_OUTCOME: dict[str, Any] = {}


def _due(now: dt.datetime, exclude_accounts, only_account: int | None):
    """The ids of due messages, oldest due first."""
    return (
        select(Message.id)
        .where(or_(
            and_(Message.status.in_(DUE_STATUSES), Message.release_at <= now),
            and_(Message.status == "held", Message.hold_until <= now),
            and_(Message.status == "sending", Message.lease_until < now),
        ))
        .where(Message.account_id.not_in(exclude_accounts) if exclude_accounts else true())
        .where(Message.account_id == only_account if only_account is not None else true())
        .order_by(Message.release_at, Message.id)
    )


def any_due(session: Executor, now: dt.datetime,
            exclude_accounts: set[int] | frozenset = frozenset()) -> bool:
    """Whether some message outside `exclude_accounts` is due (a read: no lock taken)."""
    return session.execute(_due(now, exclude_accounts, None).limit(1)).first() is not None


def claim_due(session: Executor, now: dt.datetime, lease_seconds: float,
              limit: int, exclude_accounts: set[int] | frozenset = frozenset(),
              only_account: int | None = None) -> list[Claim]:
    """Atomically lease up to `limit` due messages, oldest due first.

    Due: scheduled or retry_wait with release_at <= now; held with a hold_until that has
    passed (a daily limit's window reopened); or 'sending' whose lease expired (a worker
    died). Such a message is reconciled only if its worker had begun the send: the last
    renewal before the Gmail request sets needs_reconcile (see `clear_to_send`), so a
    claim lost before that is simply sent. `only_account` claims one account's messages
    (a sender thread going on with its account's backlog).
    """
    token = secrets.token_hex(16)
    lease_until = now + dt.timedelta(seconds=lease_seconds)
    due = _due(now, exclude_accounts, only_account).limit(limit).with_for_update(
        skip_locked=True)
    stmt = (
        update(Message)
        .where(Message.id.in_(due.scalar_subquery()))
        .values(
            status=str(transitions.get("claim").target),
            lease_until=lease_until,
            claim_token=token,
            attempts=Message.attempts + 1,
            hold_kind=None,
            hold_until=None,
            updated_at=now,
        )
        .returning(*_M.c)
        .execution_options(synchronize_session=False)
    )
    claims = [Claim(row.id, token, lease_until, bool(row.needs_reconcile), row.attempts,
                    row.account_id, row) for row in session.execute(stmt)]
    if claims:
        session.execute(_INSERT_EVENT, [
            {"message_id": c.message_id, "type": "sending", "at": now,
             "detail": {"attempt": c.attempts, "reconcile": c.needs_reconcile}}
            for c in claims])
    return claims


def _finish(session: Executor, claim: Claim, now: dt.datetime, change: str, event: str,
            detail: dict | None, **values) -> bool:
    """A worker's change of a message it holds (sending, with its claim token)."""
    step = transitions.get(change)
    assert Status.SENDING in step.sources, change
    stmt = update(_M).where(_MINE).values(lease_until=None, claim_token=None, updated_at=now,
                                          status=str(step.target), **values)
    moved = rowcount(session.execute(stmt, {"b_mid": claim.message_id,
                                   "b_tok": claim.token})) == 1
    if moved:
        record_event(session, claim.message_id, event, now, detail)
    return moved


def mark_sent(session: Executor, claim: Claim, now: dt.datetime, gmail_id: str,
              thread_id: str, subject: str, reconciled: bool = False,
              warning: str | None = None) -> bool:
    """sending → sent, with Gmail's ids (and a warning about what was sent, if any)."""
    moved = rowcount(session.execute(_MARK_SENT, {
        "b_mid": claim.message_id, "b_tok": claim.token, "b_now": now, "b_gid": gmail_id,
        "b_tid": thread_id, "b_subject": subject})) == 1
    if moved:
        detail: dict[str, str | bool] = {"gmail_message_id": gmail_id, "thread_id": thread_id}
        if reconciled:
            detail["reconciled"] = True
        if warning:
            detail["warning"] = warning
        record_event(session, claim.message_id, "sent", now, detail)
    return moved


def mark_retry(session: Executor, claim: Claim, now: dt.datetime, retry_at: dt.datetime,
               error: str, needs_reconcile: bool) -> bool:
    """sending → retry_wait until `retry_at`."""
    return _finish(session, claim, now, "retry", "retry_wait",
                   {"error": error, "retry_at": retry_at.isoformat()},
                   release_at=retry_at, error=error, needs_reconcile=needs_reconcile)


def mark_held(session: Executor, claim: Claim, now: dt.datetime, kind: str, reason: str,
              needs_reconcile: bool | None = None, until: dt.datetime | None = None) -> bool:
    """sending → held: it waits for a person (data, reconnection, a decision) or, with
    `until`, for a time (a daily limit's window)."""
    detail = {"kind": kind, "reason": reason}
    values = {}
    if until is not None:
        detail["until"] = until.isoformat()
        # It is due again when the hold ends: lateness counts from then, not from before.
        values["release_at"] = until
    if needs_reconcile is None:  # an earlier attempt's doubt survives the hold
        needs_reconcile = claim.needs_reconcile
    return _finish(session, claim, now, "hold", "held", detail, error=reason,
                   hold_kind=kind, hold_until=until, needs_reconcile=needs_reconcile,
                   **values)


def release_claim(session: Executor, claim: Claim, now: dt.datetime,
                  reason: str = "worker stopped before sending; released its claim") -> bool:
    """sending → scheduled without an attempt, due again at once: nothing was written to
    Gmail (the worker is stopping, or failed before the send).

    A claim whose lease another worker has taken over matches nothing: a no-op."""
    return _finish(session, claim, now, "give_back", "scheduled",
                   {"reason": reason}, attempts=_M.c.attempts - 1,
                   needs_reconcile=claim.needs_reconcile)


def extend_lease(session: Executor, claim: Claim, until: dt.datetime,
                 in_flight: bool = False) -> bool:
    """Keep a claim while it waits for its pacing slot, and for the send itself
    (`in_flight`: the send follows at once, so from here on it may have left)."""
    return rowcount(session.execute(_IN_FLIGHT if in_flight else _EXTEND_LEASE,
                           {"b_mid": claim.message_id, "b_tok": claim.token,
                            "b_until": until})) == 1


_SENT_EARLIER = _M.alias("earlier")
_C = table(Contact)
# What the sender guard paused (see scheduler/audience/guard.py): nothing but
# transactional mail goes from a paused account, campaign or rule.
_PAUSED = [~exists().where(t.c.id == column, t.c.paused_at.is_not(None)) for t, column in
           ((_A, _M.c.account_id), (table(Campaign), _M.c.campaign_id),
            (table(Rule), _M.c.rule_id))]
# The variants of the last check before a send, by (recipient checked, cap checked).
_CLEAR: dict[tuple[bool, bool, bool], Any] = {}


def _clear_statement(check_recipient: bool, check_cap: bool, in_flight: bool):
    statement = _CLEAR.get((check_recipient, check_cap, in_flight))
    if statement is None:
        conditions = [_MINE]
        if check_recipient:
            conditions.append(~exists().where(
                _C.c.team_id == _M.c.team_id, _C.c.email == bindparam("b_email"),
                _C.c.subscription != "subscribed"))
            conditions.extend(_PAUSED)
        if check_cap:
            conditions.append(select(func.count()).where(
                _SENT_EARLIER.c.account_id == _M.c.account_id,
                _SENT_EARLIER.c.sent_at >= bindparam("b_since")).scalar_subquery()
                < bindparam("b_cap"))
        values: dict[str, Any] = {"lease_until": bindparam("b_until")}
        if in_flight:
            values["needs_reconcile"] = True
        statement = _CLEAR[(check_recipient, check_cap, in_flight)] = (
            update(_M).where(*conditions).values(**values))
    return statement


def clear_to_send(session: Executor, claim: Claim, until: dt.datetime,
                  recipient: str | None = None,
                  cap: tuple[int, dt.datetime] | None = None, in_flight: bool = True) -> bool:
    """Renew the lease to `until` if nothing stops the send, in one statement.

    Nothing stops it when the claim is still this worker's, `recipient` (a lower-case
    address, or None for transactional mail) has not unsubscribed or bounced and neither
    the account nor the message's campaign or rule is paused, and, with
    `cap` = (cap, since), the account has sent fewer than cap messages since `since`.
    False: something does; the caller finds out what. `in_flight` (the send follows at
    once, no pacing wait) marks the message as possibly sent from here on.
    """
    params = {"b_mid": claim.message_id, "b_tok": claim.token, "b_until": until}
    if recipient is not None:
        params["b_email"] = recipient
    if cap is not None:
        params["b_cap"], params["b_since"] = cap
    statement = _clear_statement(recipient is not None, cap is not None, in_flight)
    return rowcount(session.execute(statement, params)) == 1


def reserve_send_slot(session: Executor, account_id: int, now: dt.datetime,
                      interval: float) -> dt.datetime:
    """The time this send may start so the account stays within Gmail's per-user rate.

    The slot lives in the database so that every worker process paces the same account.
    """
    current = session.execute(_NEXT_SLOT, {"b_account": account_id}).scalar()
    slot = max(current, now) if current else now
    session.execute(_SET_SLOT, {"b_account": account_id,
                                "b_next": slot + dt.timedelta(seconds=interval)})
    return slot


def sent_since(session: Executor, account_id: int, since: dt.datetime) -> int:
    """How many messages the account has sent since `since`."""
    return session.execute(_SENT_SINCE, {"b_account": account_id,
                                         "b_since": since}).scalar() or 0


def window_reopens(session: Executor, account_id: int, now: dt.datetime,
                   window: dt.timedelta, cap: int) -> dt.datetime | None:
    """When the account may send again under a cap of `cap` sends per rolling `window`.

    That is when the cap-th most recent send leaves the window. None: it may send now.
    """
    value = session.execute(_NTH_LATEST_SENT, {"b_account": account_id,
                                               "b_since": now - window,
                                               "b_skip": cap - 1}).scalar()
    return _aware(value) + window if value is not None else None


def release_held(session: Executor, account_id: int | None, kind: str, now: dt.datetime,
                 reason: str, scope=None) -> int:
    """Held messages of one kind become due now: an account's (after reconnecting), or
    those a `scope` condition picks (a resumed campaign's)."""
    where = [Message.status == "held", Message.hold_kind == kind]
    if account_id is not None:
        where.append(Message.account_id == account_id)
    if scope is not None:
        where.append(scope)
    ids = session.scalars(select(Message.id).where(*where)).all()
    if not ids:
        return 0
    step = transitions.get("release_held")
    session.execute(update(Message).where(Message.id.in_(ids),
                                          Message.status.in_([str(x) for x in step.sources]))
                    .values(status=str(step.target), release_at=now, hold_kind=None,
                            hold_until=None, error=None, updated_at=now)
                    .execution_options(synchronize_session=False))
    for message_id in ids:
        record_event(session, message_id, "scheduled", now, {"reason": reason})
    return len(ids)


def mark_suppressed(session: Executor, claim: Claim, now: dt.datetime, reason: str) -> bool:
    """sending → cancelled: the recipient unsubscribed or bounced; never sent to them."""
    return _finish(session, claim, now, "suppress", "suppressed", {"reason": reason},
                   error=reason, needs_reconcile=False)


def mark_skipped(session: Executor, claim: Claim, now: dt.datetime, reason: str) -> bool:
    """sending → cancelled: a follow-up step that must not go (a reply came, say)."""
    return _finish(session, claim, now, "skip", "skipped", {"reason": reason},
                   error=reason, needs_reconcile=False)


def mark_failed(session: Executor, claim: Claim, now: dt.datetime, error: str) -> bool:
    """sending → failed, permanently, with Gmail's reason."""
    return _finish(session, claim, now, "fail", "failed", {"error": error},
                   error=error, needs_reconcile=False)


def transition(session: Executor, message_id: str, team_id: int, change: str,
               now: dt.datetime, detail: dict | None = None, *, where=(), **values) -> bool:
    """A person's (or an event's) change of a message, by its name in the transitions
    table: only from that change's source statuses (and `where`, extra conditions)."""
    step = transitions.get(change)
    stmt = (
        update(Message)
        .where(Message.id == message_id, Message.team_id == team_id,
               Message.status.in_([str(x) for x in step.sources]), *where)
        .values(status=str(step.target), updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    moved = rowcount(session.execute(stmt)) == 1
    if moved:
        record_event(session, message_id, str(step.target), now, detail)
    return moved


def crash_count(session: Executor, message_id: str) -> int:
    """How many times releasing this message crashed (its 'crashed' events)."""
    return session.execute(select(func.count()).where(
        _E.c.message_id == message_id, _E.c.type == "crashed")).scalar() or 0


def next_wakeup(session: Executor) -> dt.datetime | None:
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
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
