"""Recurring sends: a cron expression in a time zone (APScheduler's cron trigger computes
the occurrences); each occurrence becomes its own message a little ahead of its time."""
from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scheduler import lookup, messages, templates
from scheduler.db import Database
from scheduler.errors import InvalidInput, NotFound
from scheduler.models import Schedule

log = logging.getLogger("mailrelease.schedules")

# Occurrences are queued this far ahead, so a worker's round is never late for one.
LOOKAHEAD = dt.timedelta(minutes=5)
MAX_PER_ROUND = 50  # occurrences one schedule may queue in one round (catch-up included)


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
    """The first occurrence strictly after `after`, in UTC."""
    fire = _trigger(cron, timezone).get_next_fire_time(None, after + dt.timedelta(seconds=1))
    return fire.astimezone(dt.timezone.utc) if fire else None


def create_schedule(session: Session, team_id: int, user_id: int | None, body: dict,
                    now: dt.datetime) -> Schedule:
    """Check and store a schedule: cron, timezone, template_id, to, optional data, name."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    unknown = set(body) - {"name", "cron", "timezone", "template_id", "to", "data"}
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]} is not a schedule field",
                           field=sorted(unknown)[0])
    cron, timezone = body.get("cron"), body.get("timezone", "UTC")
    if not isinstance(cron, str) or not cron.strip():
        raise InvalidInput("cron is required, e.g. \"0 9 * * mon\"", field="cron")
    first = next_after(cron.strip(), timezone, now)
    template = templates.get_template(session, team_id, body.get("template_id"))
    to = messages.parse_address(body.get("to"), "to")
    data = body.get("data") or {}
    if not isinstance(data, dict):
        raise InvalidInput("data must be an object", field="data")
    schedule = Schedule(team_id=team_id, created_by=user_id,
                        name=str(body.get("name") or template.name)[:200], cron=cron.strip(),
                        timezone=timezone, template_id=template.id, to_addr=str(to),
                        data=data, next_at=first, active=True, created_at=now)
    session.add(schedule)
    session.flush()
    return schedule


def queue_due(db: Database, now: dt.datetime) -> int:
    """Turn every occurrence due within LOOKAHEAD into a message; returns how many."""
    with db.read() as s:
        ids = s.scalars(select(Schedule.id).where(
            Schedule.active, Schedule.next_at.is_not(None),
            Schedule.next_at <= now + LOOKAHEAD)).all()
    made = 0
    for schedule_id in ids:
        with db.write() as s:
            made += queue_next(s, schedule_id, now)
    return made


def queue_next(s: Session, schedule_id: int, now: dt.datetime) -> int:
    """Queue one schedule's occurrences due within LOOKAHEAD; returns how many."""
    schedule = s.get(Schedule, schedule_id)
    made = 0
    while (schedule.active and schedule.next_at is not None
           and schedule.next_at <= now + LOOKAHEAD and made < MAX_PER_ROUND):
        at = schedule.next_at
        following = next_after(schedule.cron, schedule.timezone, at)
        # Advancing next_at only from the value read: two workers cannot queue it twice.
        moved = s.execute(update(Schedule).where(Schedule.id == schedule.id,
                                                 Schedule.next_at == at)
                          .values(next_at=following, occurrences=Schedule.occurrences + 1)
                          .execution_options(synchronize_session=False)).rowcount
        if not moved:
            return made
        try:
            message = messages.create_message(s, team_id=schedule.team_id,
                                               user_id=schedule.created_by, body={
                                                   "to": schedule.to_addr,
                                                   "template_id": schedule.template_id,
                                                   "data": {**schedule.data,
                                                            "occurrence": at.isoformat()},
                                                   "send_at": at.isoformat()}, now=now)
            message.schedule_id = schedule.id
        except (InvalidInput, NotFound) as exc:  # the template is gone, say
            log.warning("action=schedule_stopped schedule=%s reason=%s", schedule.id, exc)
            s.execute(update(Schedule).where(Schedule.id == schedule.id)
                      .values(active=False))
            return made
        made += 1
        s.refresh(schedule)
    return made


def schedule_as_dict(schedule: Schedule) -> dict:
    """The API representation."""
    return {"id": schedule.id, "name": schedule.name, "cron": schedule.cron,
            "timezone": schedule.timezone, "template_id": schedule.template_id,
            "to": schedule.to_addr, "data": schedule.data, "active": schedule.active,
            "next_at": schedule.next_at.isoformat() if schedule.next_at else None,
            "occurrences": schedule.occurrences,
            "created_at": schedule.created_at.isoformat()}


def get_schedule(session: Session, team_id: int, schedule_id) -> Schedule:
    """The team's schedule, or NotFound."""
    return lookup.team_row(session, Schedule, team_id, schedule_id, "schedule")
