"""The message state machine in one place: the statuses, and every legal change.

Each change has a name, the statuses it may start from, the status it ends in, what
triggers it and who may cause it. `scheduler.store.queue` makes every change through this
table (a conditional UPDATE on the source statuses that reports whether the row moved),
and tests/unit/test_transitions.py walks it: each change from each legal source, and from
every other status, where it must not move the row.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Where a message is. `draft` is kept until a person schedules it."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    HELD = "held"
    SENDING = "sending"
    RETRY_WAIT = "retry_wait"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


ALL = tuple(Status)
# A person (or an event) may still change these; once 'sending', only a worker moves it.
OPEN = (Status.DRAFT, Status.SCHEDULED, Status.HELD, Status.RETRY_WAIT)
# Released by the clock when their time comes.
DUE = (Status.SCHEDULED, Status.RETRY_WAIT)
FINAL = (Status.SENT, Status.FAILED, Status.CANCELLED)


@dataclass(frozen=True)
class Transition:
    """One legal change: from `sources` to `target`, on `trigger`, caused by `by`."""

    name: str
    sources: tuple[Status, ...]
    target: Status
    trigger: str
    by: str  # "worker", "user", "event" or a comma-separated list of them


_TABLE = [
    Transition("claim", (Status.SCHEDULED, Status.RETRY_WAIT, Status.HELD, Status.SENDING),
               Status.SENDING, "due (release_at, a hold's end, or an expired lease)",
               "worker"),
    Transition("sent", (Status.SENDING,), Status.SENT,
               "Gmail accepted it, or a reconcile found it in the mailbox", "worker"),
    Transition("retry", (Status.SENDING,), Status.RETRY_WAIT,
               "a transient Gmail error, or a crash while preparing (bounded)", "worker"),
    Transition("hold", (Status.SENDING,), Status.HELD,
               "needs data, a reconnection, a daily limit, a decision", "worker"),
    Transition("fail", (Status.SENDING,), Status.FAILED,
               "a permanent Gmail error, an unsendable message, too many crashes", "worker"),
    Transition("suppress", (Status.SENDING,), Status.CANCELLED,
               "the recipient unsubscribed or bounced", "worker"),
    Transition("skip", (Status.SENDING,), Status.CANCELLED,
               "a follow-up step that must not go (a reply came)", "worker"),
    Transition("give_back", (Status.SENDING,), Status.SCHEDULED,
               "the worker stops, or failed before writing to Gmail", "worker"),
    Transition("cancel", OPEN, Status.CANCELLED, "cancel, a cancel_on event, a deleted "
               "contact", "user, event"),
    Transition("cancel_stuck", (Status.SENDING,), Status.CANCELLED,
               "cancel of a message whose lease expired, after a reconcile", "user"),
    Transition("schedule", OPEN, Status.SCHEDULED, "send now, an edit, a reschedule",
               "user"),
    Transition("edit_held", OPEN, Status.HELD, "an edit that leaves data missing", "user"),
    Transition("edit_draft", (Status.DRAFT,), Status.DRAFT, "an edit of a draft", "user"),
    Transition("release_held", (Status.HELD,), Status.SCHEDULED,
               "the account was reconnected", "user"),
]
TRANSITIONS: dict[str, Transition] = {t.name: t for t in _TABLE}
# The statuses a new message may be created in (no change: an insert).
INITIAL = (Status.DRAFT, Status.SCHEDULED, Status.HELD)


def get(name: str) -> Transition:
    """The transition called `name` (KeyError for a change the machine does not have)."""
    return TRANSITIONS[name]


def allowed(source: str, target: str) -> bool:
    """Whether some transition goes from `source` to `target`."""
    return any(source in t.sources and t.target == target for t in _TABLE)
