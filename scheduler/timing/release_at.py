"""When a message is released: parsing of the timing fields into an aware UTC `release_at`."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.errors import InvalidInput
from scheduler.typed import HHMM, parse_aware

TIMING_FIELDS = ("send_at", "delay_seconds", "local_time", "best_hour")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DELAY_SECONDS = 5 * 366 * 24 * 3600


@dataclass(frozen=True)
class Recipient:
    """What timing needs to know of the recipient: their zone and, for the best hour,
    the hours of the week they engaged at (0 = Monday 00:00 in their zone)."""

    timezone: str | None = None
    engaged_hours: tuple[int, ...] = ()
    team_engaged_hours: tuple[int, ...] = ()


DEFAULT_BEST_HOUR = 10  # on any day, in the recipient's zone, without enough history
MIN_HISTORY = 3


def zone_or_utc(name) -> dt.tzinfo:
    """The IANA zone `name` names, or UTC for anything that names none (for showing a
    time, where a wrong zone is no reason to fail)."""
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _zone(name: str | None, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "")
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidInput(f"{field}: unknown time zone {name!r}", field=field) from None


def _clock(value, field: str) -> dt.time:
    match = HHMM.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise InvalidInput(f"{field} must be a time like 09:00", field=field)
    return dt.time(int(match.group(1)), int(match.group(2)))


def _recipient_zone(fields: dict, recipient: Recipient, field: str) -> ZoneInfo:
    given = fields.get(field)
    spec: dict = given if isinstance(given, dict) else {}
    name = recipient.timezone or spec.get("fallback_timezone")
    if not name:
        raise InvalidInput(f"{field} needs the recipient's time zone: add one to the contact "
                           f"(or give {field}.fallback_timezone)", field=field)
    return _zone(name, f"{field}.fallback_timezone" if not recipient.timezone else field)


def local_wall_time(day: dt.date, at: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """`at` on `day` in `zone`, as UTC. A time skipped by a DST change moves forward by the
    gap (02:30 on a spring-forward night is 03:30); a repeated one is its first occurrence."""
    return dt.datetime.combine(day, at, tzinfo=zone).astimezone(dt.UTC)


def next_local(at: dt.time, zone: ZoneInfo, now: dt.datetime,
               day: dt.date | None = None) -> dt.datetime:
    """The next `at` in `zone` from `now` (on `day` if given; past = now)."""
    if day is not None:
        return max(local_wall_time(day, at, zone), now)
    today = now.astimezone(zone).date()
    for offset in range(0, 3):
        when = local_wall_time(today + dt.timedelta(days=offset), at, zone)
        if when >= now:
            return when
    raise AssertionError("unreachable")  # pragma: no cover


def _local_time(fields: dict, now: dt.datetime, recipient: Recipient) -> dt.datetime:
    spec = fields["local_time"]
    if not isinstance(spec, dict):
        raise InvalidInput('local_time must be {"time": "09:00", "date": "2026-11-24"?}',
                           field="local_time")
    at = _clock(spec.get("time"), "local_time.time")
    zone = _recipient_zone(fields, recipient, "local_time")
    day = None
    if spec.get("date") is not None:
        try:
            day = dt.date.fromisoformat(str(spec["date"]))
        except ValueError:
            raise InvalidInput("local_time.date must be YYYY-MM-DD",
                               field="local_time.date") from None
    return next_local(at, zone, now, day)


def best_hour(now: dt.datetime, zone: ZoneInfo, recipient: Recipient) -> tuple[dt.datetime, str]:
    """The next occurrence of the hour of the week the recipient engages most, and why."""
    for hours, whose in ((recipient.engaged_hours, "their"),
                         (recipient.team_engaged_hours, "the team's contacts'")):
        if len(hours) >= MIN_HISTORY:
            counts: dict[int, int] = {}
            for h in hours:
                counts[h] = counts.get(h, 0) + 1
            best = max(sorted(counts), key=lambda h: counts[h])
            day, hour = divmod(best, 24)
            local_now = now.astimezone(zone)
            ahead = (day - local_now.weekday()) % 7
            when = local_wall_time(local_now.date() + dt.timedelta(days=ahead),
                                   dt.time(hour), zone)
            if when < now:
                when = local_wall_time(local_now.date() + dt.timedelta(days=ahead + 7),
                                       dt.time(hour), zone)
            reason = (f"{whose} most frequent open or click time: {DAYS[day].title()} "
                      f"{hour:02d}:00 ({counts[best]} of {len(hours)} engagements)")
            return when, reason
    when = next_local(dt.time(DEFAULT_BEST_HOUR), zone, now)
    return when, (f"too little engagement history (fewer than {MIN_HISTORY} opens or clicks):"
                  f" the default, {DEFAULT_BEST_HOUR:02d}:00 in the recipient's zone")


def apply_window(when: dt.datetime, spec, zone: dt.tzinfo) -> dt.datetime:
    """Move `when` into the next allowed window, e.g. {"days": ["mon".."fri"], "start":
    "09:00", "end": "17:00"} in the recipient's zone."""
    if not isinstance(spec, dict):
        raise InvalidInput('window must be {"days": [...], "start": "09:00", "end": "17:00"}',
                           field="window")
    days = spec.get("days", list(DAYS[:5]))
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        raise InvalidInput(f"window.days must list days among {', '.join(DAYS)}",
                           field="window.days")
    start = _clock(spec.get("start", "09:00"), "window.start")
    end = _clock(spec.get("end", "17:00"), "window.end")
    if end <= start:
        raise InvalidInput("window.end must be after window.start", field="window.end")
    local = when.astimezone(zone)
    for offset in range(0, 8):
        day = local.date() + dt.timedelta(days=offset)
        if DAYS[day.weekday()] not in days:
            continue
        opens, closes = (local_wall_time(day, start, zone), local_wall_time(day, end, zone))
        if when < closes:
            return max(when, opens)
    raise AssertionError("unreachable")  # pragma: no cover


def release_time(fields: dict, now: dt.datetime,
                 recipient: Recipient | None = None) -> dt.datetime:
    """The release time asked for by one of send_at | delay_seconds | local_time |
    best_hour | nothing (= now), then moved into `window` if one is given.

    A time in the past means 'now': the message is released at once.
    """
    return plan(fields, now, recipient)[0]


def plan(fields: dict, now: dt.datetime,
         recipient: Recipient | None = None) -> tuple[dt.datetime, str | None]:
    """(release time, why) for the timing fields; `why` explains a best hour or a window."""
    recipient = recipient or Recipient()
    given = [name for name in TIMING_FIELDS if fields.get(name) not in (None, False)]
    if len(given) > 1:
        raise InvalidInput(f"give only one of {', '.join(given)}", field=given[1])
    reason = None
    if not given:
        when = now
    elif given[0] == "send_at":
        when = max(parse_aware(fields["send_at"], "send_at"), now)
    elif given[0] == "delay_seconds":
        delay = fields["delay_seconds"]
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise InvalidInput("delay_seconds must be a number", field="delay_seconds")
        if delay < 0 or delay > MAX_DELAY_SECONDS:
            raise InvalidInput("delay_seconds must be between 0 and five years",
                               field="delay_seconds")
        when = now + dt.timedelta(seconds=delay)
    elif given[0] == "local_time":
        when = _local_time(fields, now, recipient)
    else:
        if fields["best_hour"] is not True and not isinstance(fields["best_hour"], dict):
            raise InvalidInput("best_hour must be true", field="best_hour")
        when, reason = best_hour(now, _recipient_zone(fields, recipient, "best_hour"),
                                 recipient)
    if fields.get("window") is not None:
        zone: dt.tzinfo = _recipient_zone(fields, recipient, "window") if recipient.timezone or (
            isinstance(fields["window"], dict) and fields["window"].get("fallback_timezone")
        ) else dt.UTC
        moved = apply_window(when, fields["window"], zone)
        if moved != when:
            reason = ((reason + "; ") if reason else "") + "moved into the send window"
        when = moved
    return when, reason
