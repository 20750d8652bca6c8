"""The queue's invariants, in milliseconds: leases, claim tokens, and the transitions table.

Each test drives scheduler.store.queue directly on a SQLite file with an explicit clock, so a
broken lease check or claim-token check fails here, not only in the SIGKILL acceptance
tests that take minutes.
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from scheduler.store import queue, transitions
from scheduler.store.models import MESSAGE_STATUSES, Message, MessageEvent
from scheduler.store.transitions import Status
from tests.unit.conftest import T0, add_message, row

LEASE = 60


def _claim(db, at=T0, lease=LEASE, limit=10):
    with db.write() as s:
        return queue.claim_due(s, at, lease, limit)


def _sec(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def test_claim_takes_a_due_message_and_leases_it(db):
    mid = add_message(db)
    (claim,) = _claim(db)
    stored = row(db, mid)
    assert claim.message_id == mid and stored.status == "sending"
    assert stored.claim_token == claim.token and stored.lease_until == T0 + _sec(LEASE)
    assert stored.attempts == 1


def test_claim_skips_a_live_lease(db):
    add_message(db)
    assert len(_claim(db)) == 1
    assert _claim(db, at=T0 + _sec(LEASE - 1)) == []  # still the first worker's


def test_claim_takes_over_an_expired_lease_with_a_new_token(db):
    add_message(db)
    (old,) = _claim(db)
    (new,) = _claim(db, at=T0 + _sec(LEASE + 1))
    assert new.token != old.token and new.attempts == 2


def test_claim_leaves_messages_that_are_not_due(db):
    add_message(db, release_at=T0 + _sec(1))
    add_message(db, status="held")  # held with no end: waits for a person
    add_message(db, status="held", hold_until=T0 + _sec(5))
    for status in ("draft", "sent", "failed", "cancelled"):
        add_message(db, status=status)
    assert _claim(db) == []


def test_claim_takes_a_held_message_whose_hold_ended(db):
    mid = add_message(db, status="held", hold_kind="daily_limit", hold_until=T0 - _sec(1))
    (claim,) = _claim(db)
    assert claim.message_id == mid and row(db, mid).hold_kind is None


def _finishers(claim):
    """Every way a worker ends or keeps a claim, each with a fresh call."""
    later = T0 + _sec(LEASE + 2)
    return {
        "mark_sent": lambda s: queue.mark_sent(s, claim, later, "g", "t", "S"),
        "mark_retry": lambda s: queue.mark_retry(s, claim, later, later, "e", False),
        "mark_held": lambda s: queue.mark_held(s, claim, later, "missing_data", "r"),
        "mark_failed": lambda s: queue.mark_failed(s, claim, later, "e"),
        "mark_suppressed": lambda s: queue.mark_suppressed(s, claim, later, "r"),
        "mark_skipped": lambda s: queue.mark_skipped(s, claim, later, "r"),
        "release_claim": lambda s: queue.release_claim(s, claim, later),
        "extend_lease": lambda s: queue.extend_lease(s, claim, later + _sec(60)),
        "clear_to_send": lambda s: queue.clear_to_send(s, claim, later + _sec(60)),
    }


@pytest.mark.parametrize("finisher", sorted(_finishers(None)))
def test_after_a_takeover_the_old_claim_can_change_nothing(db, finisher):
    mid = add_message(db)
    (old,) = _claim(db)
    (new,) = _claim(db, at=T0 + _sec(LEASE + 1))
    with db.write() as s:
        assert _finishers(old)[finisher](s) is False
    stored = row(db, mid)
    assert stored.status == "sending" and stored.claim_token == new.token
    assert stored.lease_until == T0 + _sec(2 * LEASE + 1)


@pytest.mark.parametrize("finisher", sorted(_finishers(None)))
def test_the_current_claim_can_finish(db, finisher):
    add_message(db)
    (claim,) = _claim(db)
    with db.write() as s:
        assert _finishers(claim)[finisher](s) is True


def test_a_lost_lease_is_reconciled_only_after_the_gmail_request_began(db):
    quiet, begun = add_message(db), add_message(db)
    claims = {c.message_id: c for c in _claim(db)}
    with db.write() as s:
        assert queue.clear_to_send(s, claims[quiet], T0 + _sec(10), in_flight=False)
        assert queue.clear_to_send(s, claims[begun], T0 + _sec(10), in_flight=True)
    again = {c.message_id: c for c in _claim(db, at=T0 + _sec(11))}
    assert not again[quiet].needs_reconcile and again[begun].needs_reconcile


def test_giving_back_keeps_an_earlier_doubt(db):
    mid = add_message(db, needs_reconcile=True)
    (claim,) = _claim(db)
    with db.write() as s:
        assert queue.clear_to_send(s, claim, T0 + _sec(10), in_flight=True)
        assert queue.release_claim(s, claim, T0 + _sec(1))
    stored = row(db, mid)
    assert stored.status == "scheduled" and stored.needs_reconcile and stored.attempts == 0


# -- the transitions table -------------------------------------------------------------

USER_CHANGES = [t for t in transitions.TRANSITIONS.values() if "worker" not in t.by
                and t.name != "cancel_stuck"]
WORKER_FINISH = {"sent": "mark_sent", "retry": "mark_retry", "hold": "mark_held",
                 "fail": "mark_failed", "suppress": "mark_suppressed", "skip": "mark_skipped",
                 "give_back": "release_claim"}


def test_the_table_covers_every_status_and_uses_only_known_ones():
    assert {str(s) for s in Status} == set(MESSAGE_STATUSES)
    reached = {t.target for t in transitions.TRANSITIONS.values()} | set(transitions.INITIAL)
    assert reached == set(Status)  # every status can be reached
    for final in transitions.FINAL:  # and nothing leaves a final one
        assert not any(final in t.sources for t in transitions.TRANSITIONS.values())


@pytest.mark.parametrize("change", [t.name for t in USER_CHANGES])
@pytest.mark.parametrize("status", MESSAGE_STATUSES)
def test_a_users_change_moves_only_from_its_sources(db, change, status):
    step = transitions.get(change)
    mid = add_message(db, status=status, lease_until=T0 + _sec(LEASE)
                      if status == "sending" else None)
    with db.write() as s:
        moved = queue.transition(s, mid, 1, change, T0)
    assert moved is (status in step.sources)
    stored = row(db, mid)
    assert stored.status == (str(step.target) if moved else status)
    with db.read() as s:
        events = s.scalars(select(MessageEvent.type).where(
            MessageEvent.message_id == mid)).all()
    assert events == ([str(step.target)] if moved else [])


@pytest.mark.parametrize("change", sorted(WORKER_FINISH))
def test_a_workers_change_ends_in_the_tables_target(db, change):
    mid = add_message(db)
    (claim,) = _claim(db)
    with db.write() as s:
        assert _finishers(claim)[WORKER_FINISH[change]](s)
    assert row(db, mid).status == str(transitions.get(change).target)


@pytest.mark.parametrize("status", [s for s in MESSAGE_STATUSES if s != "sending"])
@pytest.mark.parametrize("change", sorted(WORKER_FINISH))
def test_a_workers_change_needs_a_sending_message(db, change, status):
    mid = add_message(db)
    (claim,) = _claim(db)
    with db.write() as s:
        s.execute(update(Message).where(Message.id == mid).values(status=status))
    with db.write() as s:
        assert _finishers(claim)[WORKER_FINISH[change]](s) is False
    assert row(db, mid).status == status


def test_another_teams_id_changes_nothing(db):
    mid = add_message(db)
    with db.write() as s:
        assert not queue.transition(s, mid, 2, "cancel", T0)
        assert s.scalar(select(func.count()).select_from(MessageEvent)) == 0
