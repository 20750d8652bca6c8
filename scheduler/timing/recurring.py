"""Occurrences of a recurring send: a cron expression in a time zone, computed by
APScheduler's cron trigger, with the local-time rules for DST gaps and repeats."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from scheduler.errors import InvalidInput


def _trigger(cron: str, timezone: str) -> CronTrigger:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidInput(f"timezone: unknown time zone {timezone!r}", field="timezone") from None
    try:
        return CronTrigger.from_crontab(cron, timezone=zone)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"cron is not a crontab expression (minute hour day month "
                           f"weekday): {exc}", field="cron") from None



def next_after(cron: str, timezone: str, after: dt.datetime) -> dt.datetime | None:
    """The first occurrence strictly after `after`, in UTC.

    As for local_time: a wall-clock time that a DST change skips moves forward by the gap
    (APScheduler's cron trigger does this), and one that it repeats fires once, the
    first time. A cron with a wildcard or step in its hour field (every hour, every 15
    minutes) is a rhythm, not a wall-clock time, and keeps running through the repeat.
    """
    trigger = _trigger(cron, timezone)
    wall_clock = not any(c in cron.split()[1] for c in "*/") if len(cron.split()) > 1 else False
    fire = trigger.get_next_fire_time(None, after + dt.timedelta(seconds=1))
    while fire is not None and wall_clock and _second_of_repeated(fire):
        # In UTC: local arithmetic would drop the fold and land before the repeat again.
        fire = trigger.get_next_fire_time(None, fire.astimezone(dt.UTC)
                                          + dt.timedelta(seconds=1))
    return fire.astimezone(dt.UTC) if fire else None



def _second_of_repeated(fire: dt.datetime) -> bool:
    """Whether this local time already happened an hour earlier (a fall-back night)."""
    first = fire.replace(tzinfo=None).replace(tzinfo=fire.tzinfo, fold=0)
    # Compared in UTC: aware datetimes that share a tzinfo compare as wall times.
    return (first.utcoffset() != fire.utcoffset()
            and first.astimezone(dt.UTC) < fire.astimezone(dt.UTC))
