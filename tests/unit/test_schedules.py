"""Recurring occurrences across DST changes, and the catch-up rule after downtime."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from scheduler.automation.schedules import _due_occurrences
from scheduler.timing.recurring import next_after

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.UTC


def _walk(cron: str, start: dt.datetime, n: int) -> list[str]:
    out, at = [], start
    for _ in range(n):
        at = next_after(cron, "Europe/Paris", at)
        out.append(at.astimezone(PARIS).isoformat())
    return out


def test_a_daily_time_repeated_by_the_autumn_change_fires_once_the_first_time():
    got = _walk("30 2 * * *", dt.datetime(2026, 10, 23, 12, tzinfo=UTC), 3)
    assert got == ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00",
                   "2026-10-26T02:30:00+01:00"]


def test_a_daily_time_skipped_by_the_spring_change_moves_forward_by_the_gap():
    got = _walk("30 2 * * *", dt.datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert got == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00",
                   "2026-03-30T02:30:00+02:00"]


def test_an_hourly_rhythm_keeps_running_through_the_repeated_hour():
    got = _walk("30 * * * *", dt.datetime(2026, 10, 25, 0, 0, tzinfo=UTC), 3)
    assert got == ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00",
                   "2026-10-25T03:30:00+01:00"]


def _schedule(catch_up: str, next_at: dt.datetime):
    return SimpleNamespace(cron="0 9 * * *", timezone="UTC", catch_up=catch_up,
                           next_at=next_at)


NOW = dt.datetime(2026, 12, 11, 12, tzinfo=UTC)
DOWN_SINCE = dt.datetime(2026, 12, 1, 9, tzinfo=UTC)  # ten 09:00s missed, today's included


def test_after_downtime_only_the_latest_missed_occurrence_goes_by_default():
    due, following = _due_occurrences(_schedule("latest", DOWN_SINCE), NOW,
                                      dt.timedelta(hours=1))
    assert due == [(dt.datetime(2026, 12, 11, 9, tzinfo=UTC), "catch_up")]
    assert following == dt.datetime(2026, 12, 12, 9, tzinfo=UTC)


def test_after_downtime_all_or_hold_take_every_missed_occurrence():
    for policy in ("all", "hold"):
        due, _ = _due_occurrences(_schedule(policy, DOWN_SINCE), NOW, dt.timedelta(hours=1))
        assert len(due) == 11 and {how for _, how in due} == {
            "catch_up" if policy == "all" else "hold"}


def test_an_occurrence_within_the_lateness_goes_at_its_time():
    due, _ = _due_occurrences(SimpleNamespace(cron="30 11 * * *", timezone="UTC",
                                              catch_up="latest",
                                              next_at=dt.datetime(2026, 12, 11, 11, 30,
                                                                  tzinfo=UTC)),
                              NOW, dt.timedelta(hours=1))
    assert due == [(dt.datetime(2026, 12, 11, 11, 30, tzinfo=UTC), None)]
