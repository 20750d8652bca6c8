"""When a message is released: parsing of the timing fields into an aware UTC `release_at`."""
from __future__ import annotations

import datetime as dt

from scheduler.errors import InvalidInput

TIMING_FIELDS = ("send_at", "delay_seconds", "local_time")
MAX_DELAY_SECONDS = 5 * 366 * 24 * 3600


def parse_aware(value, field: str) -> dt.datetime:
    """Parse ISO 8601 with an offset; a naive or malformed time is refused naming `field`."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be an ISO 8601 string with an offset", field=field)
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field} is not an ISO 8601 time: {value!r}", field=field) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(f"{field} has no UTC offset; write e.g. 2026-11-23T09:00:00+09:00",
                           field=field)
    return when.astimezone(dt.timezone.utc)


def release_time(fields: dict, now: dt.datetime) -> dt.datetime:
    """The release time asked for by one of send_at | delay_seconds | nothing (= now).

    A time in the past means 'now': the message is released at once.
    """
    given = [name for name in TIMING_FIELDS if fields.get(name) is not None]
    if len(given) > 1:
        raise InvalidInput(f"give only one of {', '.join(given)}", field=given[1])
    if not given:
        return now
    name = given[0]
    if name == "send_at":
        return max(parse_aware(fields["send_at"], "send_at"), now)
    if name == "delay_seconds":
        delay = fields["delay_seconds"]
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise InvalidInput("delay_seconds must be a number", field="delay_seconds")
        if delay < 0 or delay > MAX_DELAY_SECONDS:
            raise InvalidInput("delay_seconds must be between 0 and five years",
                               field="delay_seconds")
        return now + dt.timedelta(seconds=delay)
    raise InvalidInput("local_time needs the contact's time zone, which arrives with "
                       "contacts; use send_at with an offset for now", field="local_time")
