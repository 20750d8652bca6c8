"""What the web app's pages rest on, without a server: the queue ordered by release time
(drafts last) and paged without a gap or a repeat, counts per status, recurring sends
paused, resumed and stopped, segments and their size, an import naming a repeated address,
and timeline events told in sentences."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from sqlalchemy import select

from app.ui import timeline
from scheduler.audience import contacts, segments
from scheduler.automation import schedules
from scheduler.commands import NewSegment, ScheduleChange
from scheduler.engine import messages
from scheduler.errors import Conflict, InvalidInput
from scheduler.store.audit import Actor
from scheduler.store.models import Contact, Schedule, Template
from scheduler.timing.recurring import next_after
from scheduler.typed import make
from tests.unit.conftest import T0, add_message

ADA = Actor(team_id=1, user_id=1, via="web")


def _pages(db, sort: str, status: str | None = None, limit: int = 3) -> list[str]:
    seen, cursor = [], None
    while True:
        with db.read() as s:
            rows, cursor = messages.list_messages(s, 1, status=status, sort=sort,
                                                  cursor=cursor, limit=limit)
            seen += [m.id for m in rows]
        if cursor is None:
            return seen


@pytest.mark.parametrize("sort", ["release", "release_desc"])
def test_the_queue_pages_by_release_time_with_drafts_last_and_nothing_twice(db, sort):
    at = [T0 + dt.timedelta(minutes=m) for m in (30, 10, 20, 10, 40)]
    timed = [add_message(db, release_at=when) for when in at]
    drafts = [add_message(db, status="draft", release_at=None) for _ in range(2)]
    order = sorted(range(len(at)), key=lambda i: (at[i], timed[i]),
                   reverse=sort == "release_desc")
    expected = [timed[i] for i in order] + sorted(drafts)
    assert _pages(db, sort) == expected  # pages of 3: across the drafts' boundary too
    assert _pages(db, sort, limit=50) == expected


def test_a_cursor_of_one_order_is_refused_by_another(db):
    for m in range(4):
        add_message(db, release_at=T0 + dt.timedelta(minutes=m))
    with db.read() as s:
        _, cursor = messages.list_messages(s, 1, sort="release", limit=2)
        with pytest.raises(InvalidInput) as refused:
            messages.list_messages(s, 1, sort="release_desc", cursor=cursor)
    assert refused.value.field == "cursor"


def test_counts_per_status_add_up(db):
    for status in ("scheduled", "scheduled", "held", "sent", "cancelled"):
        add_message(db, status=status)
    with db.read() as s:
        counts = messages.status_counts(s, 1)
    assert (counts["scheduled"], counts["held"], counts["sent"], counts["draft"]) == (2, 1, 1, 0)
    assert counts["all"] == 5


def _schedule(db) -> int:
    with db.write() as s:
        s.add(Template(id=1, team_id=1, name="t", subject="S", html="h", created_at=T0,
                       updated_at=T0))
        s.flush()
        made = Schedule(team_id=1, name="Monday", cron="0 9 * * mon", timezone="Europe/Paris",
                        template_id=1, to_addr="a@example.org", data={},
                        next_at=next_after("0 9 * * mon", "Europe/Paris", T0),
                        created_at=T0)
        s.add(made)
        s.flush()
        return made.id


def test_a_paused_schedule_resumes_from_after_now_and_a_stopped_one_stays_stopped(db):
    sid = _schedule(db)
    with db.write() as s:
        first = schedules.upcoming(s.get(Schedule, sid))
        assert [d.weekday() for d in first] == [0, 0, 0] and first[0] > T0
        paused = schedules.pause_schedule(s, ADA, sid, T0)
        assert schedules.schedule_state(paused) == "paused"
        assert schedules.upcoming(paused) == []
    later = T0 + dt.timedelta(days=20)
    with db.write() as s:
        resumed = schedules.resume_schedule(s, ADA, sid, later)
        # The Mondays that fell while it was paused are not sent late.
        assert resumed.next_at > later and resumed.next_at.weekday() == 0
        schedules.stop_schedule(s, ADA, sid, later)
    with db.write() as s, pytest.raises(Conflict):
        schedules.resume_schedule(s, ADA, sid, later)
    with db.read() as s:
        stopped = s.get(Schedule, sid)
        assert schedules.schedule_state(stopped) == "stopped" and stopped.next_at is None


def test_editing_the_cron_moves_the_next_occurrence(db):
    sid = _schedule(db)
    with db.write() as s:
        changed = schedules.change_schedule(
            s, ADA, sid, make(ScheduleChange, cron="30 7 * * *"), T0)
        assert (changed.next_at.astimezone(dt.UTC).hour,
                changed.next_at.minute) == (6, 30)  # 07:30 in Paris, winter
        with pytest.raises(InvalidInput) as refused:
            schedules.change_schedule(s, ADA, sid, make(ScheduleChange, cron="x"),
                                      T0)
    assert refused.value.field == "cron"


def test_a_segment_counts_matching_and_subscribed_contacts(db):
    with db.write() as s:
        for i, (plan, state) in enumerate([("pro", "subscribed"), ("pro", "unsubscribed"),
                                           ("free", "subscribed"), ("pro", "subscribed")]):
            s.add(Contact(team_id=1, email=f"c{i}@example.org", attributes={"plan": plan},
                          subscription=state, created_at=T0, updated_at=T0))
    conditions = [{"field": "contact.plan", "op": "equals", "value": "pro"}]
    with db.read() as s:
        assert segments.count(s, 1, conditions) == {"matching": 3, "subscribed": 2}
        assert segments.count(s, 1, []) == {"matching": 4, "subscribed": 3}
    assert segments.describe(conditions) == "plan is pro"
    with pytest.raises(InvalidInput) as refused:
        segments.checked_conditions(make(NewSegment, name="x", conditions=[
            {"field": "data.total", "op": "exists"}]))
    assert refused.value.field == "conditions[0].field"


def test_an_import_names_a_row_that_repeats_an_earlier_address(db):
    csv = b"email,name\nann@example.org,Ann\nbob@example.org,Bob\nANN@example.org,Ann B\n"
    report = contacts.import_csv(db, 1, io.BytesIO(csv), T0)
    assert (report.imported, report.updated) == (2, 0)
    assert report.merged == [{"row": 4, "same_as_row": 2, "email": "ann@example.org"}]
    with db.read() as s:
        assert contacts.find_contact(s, 1, "ann@example.org").name == "Ann B"


def test_timeline_events_read_as_sentences_with_their_times():
    held = timeline.sentence({"type": "held", "detail": {
        "kind": "daily_cap", "reason": "the daily limit of 500 was reached",
        "until": "2026-12-02T13:05:00+00:00"}})
    assert str(held) == ('Held: the daily limit of 500 was reached; releases at '
                         '<time datetime="2026-12-02T13:05:00+00:00">Wed 02 Dec 2026, '
                         '13:05 UTC</time>')
    cancelled = timeline.sentence({"type": "cancelled", "detail": {
        "by": "ui:7", "reason": "Grace's <b>request</b>"}})
    assert str(cancelled) == "Cancelled from the web app: Grace&#39;s &lt;b&gt;request&lt;/b&gt;"
    assert timeline.tone({"type": "failed"}) == "bad"
    assert str(timeline.sentence({"type": "something_new"})) == "Something new"


# Contacts whose attributes are every kind of JSON value, and conditions of every kind:
# the segment's count (SQL where it can decide, Python for the rest) must equal the rules'
# own `matches` applied to each contact.
TRICKY = [{"plan": "pro"}, {"plan": "Pro"}, {"plan": 5}, {"plan": "5"}, {"plan": 5.0},
          {"plan": True}, {"plan": None}, {"plan": ["pro"]}, {}, {"email": "x@y.org"},
          {"plan": "pro", "country": "FR"}, {"country": "fr"}, {"plan": "None"},
          {"nested": {"tier": "gold"}}, {"plan": "it's"}]
SEGMENT_CONDITIONS = [
    [{"field": "contact.plan", "op": op, "value": value}]
    for op in ("equals", "not_equals", "contains", "greater", "less")
    for value in ("pro", "Pro", "5", 5, "True", True, "None", None, "['pro']", "it's")
] + [[{"field": "contact.plan", "op": "exists"}],
     [{"field": "contact.email", "op": "equals", "value": "c3@example.org"}],
     [{"field": "contact.name", "op": "not_equals", "value": "C 1"}],
     [{"field": "contact.timezone", "op": "exists"}],
     [{"field": "contact.subscription", "op": "equals", "value": "unsubscribed"}],
     [{"field": "contact.nested.tier", "op": "equals", "value": "gold"}],
     [{"field": "contact.plan", "op": "equals", "value": "pro"},
      {"field": "contact.country", "op": "contains", "value": "F"}]]


def segment_counts_agree(db, team_id: int = 1) -> None:
    """Add the tricky contacts to `team_id` and compare every condition set's count."""
    from scheduler.audience.conditions import matches
    with db.write() as s:
        for i, attributes in enumerate(TRICKY):
            s.add(Contact(team_id=team_id, email=f"c{i}@example.org",
                          name=f"C {i}" if i % 3 else None,
                          timezone="Europe/Paris" if i % 2 else None, attributes=attributes,
                          subscription="unsubscribed" if i % 4 == 0 else "subscribed",
                          created_at=T0, updated_at=T0))
    with db.read() as s:
        everyone = s.scalars(select(Contact).where(Contact.team_id == team_id)).all()
        for conditions in SEGMENT_CONDITIONS:
            want = [c for c in everyone if matches(conditions, {}, c)]
            assert segments.count(s, team_id, conditions) == {
                "matching": len(want),
                "subscribed": sum(c.subscription == "subscribed" for c in want)}, conditions


def test_a_segment_counted_in_sql_agrees_with_the_rules_on_every_kind_of_value(db):
    segment_counts_agree(db)
    # SQL decides the plain ones alone (nothing is left for Python).
    assert segments.as_sql({"field": "contact.plan", "op": "equals", "value": "pro"}) \
        is not None
    assert segments.as_sql({"field": "contact.plan", "op": "equals", "value": "5"}) is None
