"""The dashboard's counts are kept as events are recorded: one per message and outcome,
in its UTC hour, whatever the number of events (a second open is not a second opener)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from scheduler.delivery import statistics
from scheduler.store import queue
from scheduler.store.models import OutcomeCount
from tests.unit.conftest import T0, add_message


def _counts(db) -> dict:
    with db.read() as s:
        return {(c.kind, c.hour): c.n for c in s.scalars(select(OutcomeCount))}


def test_each_message_counts_once_per_outcome_in_its_hour(db):
    first, second = add_message(db), add_message(db)
    later = T0 + dt.timedelta(minutes=75)
    with db.write() as s:
        for mid in (first, second):
            queue.record_event(s, mid, "sent", T0)
        queue.record_event(s, first, "opened", T0 + dt.timedelta(minutes=5))
        queue.record_event(s, first, "opened", later)  # the same reader again
        queue.record_event(s, second, "opened", later)
        queue.record_event(s, first, "machine_open", later)  # not an outcome
    hour = T0.replace(minute=0)
    assert _counts(db) == {("sent", hour): 2, ("opened", hour): 1,
                           ("opened", hour + dt.timedelta(hours=1)): 1}
    with db.read() as s:
        shown = statistics.over_time(s, 1, days=2, zone="Asia/Tokyo",
                                     now=T0 + dt.timedelta(hours=3))
    # 09:00 UTC is 18:00 in Tokyo: both hours fall on its 1 December.
    assert shown["series"]["opened"] == [0, 2] and shown["totals"]["sent"] == 2
