"""Recurring sends: a cron expression in a time zone (APScheduler's cron trigger computes
the occurrences); each occurrence becomes its own message a little ahead of its time."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler.commands import NewMessage, NewSchedule, Origin, ScheduleChange
from scheduler.content import templates
from scheduler.engine import messages
from scheduler.errors import Conflict, InvalidInput, NotFound
from scheduler.store import audit, lookup
from scheduler.store.audit import Actor
from scheduler.store.db import Database, rowcount, utcnow
from scheduler.store.models import Schedule
from scheduler.timing.recurring import next_after
from scheduler.typed import make

log = logging.getLogger("mailrelease.schedules")

# Occurrences are queued this far ahead, so a worker's round is never late for one.
LOOKAHEAD = dt.timedelta(minutes=5)
MAX_PER_ROUND = 50  # occurrences one schedule may queue in one round (catch-up included)
MAX_STEPS = 20_000  # occurrences one round may look at (a minutely cron down for 2 weeks)
CATCH_UP = ("latest", "all", "hold")


def create_schedule(session: Session, team_id: int, user_id: int | None,
                    command: NewSchedule, now: dt.datetime,
                    actor: Actor | None = None) -> Schedule:
    """Check and store a schedule: cron, timezone, template_id, to, optional data, name."""
    first = next_after(command.cron.strip(), command.timezone, now)
    template = templates.get_template(session, team_id, command.template_id)
    schedule = Schedule(catch_up=command.catch_up, team_id=team_id, created_by=user_id,
                        name=command.name or template.name[:200], cron=command.cron.strip(),
                        timezone=command.timezone, template_id=template.id,
                        to_addr=command.to, data=command.data, next_at=first, active=True,
                        created_at=now)
    session.add(schedule)
    session.flush()
    audit.record(session, actor, "created a recurring send", f"schedule {schedule.id}",
                 {"cron": schedule.cron, "timezone": schedule.timezone}, now)
    return schedule


def stop_schedule(session: Session, actor: Actor, schedule_id, now: dt.datetime) -> Schedule:
    """No further occurrences, for good; those already queued can still be cancelled."""
    schedule = get_schedule(session, actor.team_id, schedule_id)
    if schedule.stopped_at is None:
        schedule.active, schedule.next_at = False, None
        schedule.stopped_at, schedule.stop_reason = now, f"stopped by {actor.by}"
        audit.record(session, actor, "stopped a recurring send", f"schedule {schedule.id}",
                     None, now)
    return schedule


def pause_schedule(session: Session, actor: Actor, schedule_id, now: dt.datetime) -> Schedule:
    """No occurrences until resumed (those already queued stay queued)."""
    schedule = _open(session, actor, schedule_id, "pause")
    if schedule.active:
        schedule.active = False
        audit.record(session, actor, "paused a recurring send", f"schedule {schedule.id}",
                     None, now)
    return schedule


def resume_schedule(session: Session, actor: Actor, schedule_id,
                    now: dt.datetime) -> Schedule:
    """Occurrences again, from the next one after now: those that fell while it was
    paused are not sent late."""
    schedule = _open(session, actor, schedule_id, "resume")
    if not schedule.active:
        schedule.active = True
        schedule.next_at = next_after(schedule.cron, schedule.timezone, now)
        audit.record(session, actor, "resumed a recurring send", f"schedule {schedule.id}",
                     None, now)
    return schedule


def change_schedule(session: Session, actor: Actor, schedule_id, change: ScheduleChange,
                    now: dt.datetime) -> Schedule:
    """Edit a recurring send; a new cron or zone takes effect from the next occurrence."""
    schedule = _open(session, actor, schedule_id, "edit")
    given = change.model_dump(exclude_unset=True, exclude_none=True)
    cron = given.get("cron", schedule.cron).strip()
    zone = given.get("timezone", schedule.timezone)
    following = next_after(cron, zone, now)  # checks both (422 naming the field)
    if (cron, zone) != (schedule.cron, schedule.timezone):
        schedule.cron, schedule.timezone = cron, zone
        if schedule.active:
            schedule.next_at = following
    for name, column in (("name", "name"), ("to", "to_addr"), ("data", "data"),
                         ("catch_up", "catch_up")):
        if name in given:
            setattr(schedule, column, given[name])
    session.flush()
    audit.record(session, actor, "changed a recurring send", f"schedule {schedule.id}",
                 {"fields": sorted(given)}, now)
    return schedule


def _open(session: Session, actor: Actor, schedule_id, action: str) -> Schedule:
    schedule = get_schedule(session, actor.team_id, schedule_id)
    if schedule.stopped_at is not None:
        raise Conflict(f"cannot {action} a recurring send that was stopped", field="status")
    return schedule


def upcoming(schedule: Schedule, count: int = 3) -> list[dt.datetime]:
    """Its next occurrences (none while paused or stopped)."""
    out: list[dt.datetime] = []
    at = schedule.next_at if schedule.active else None
    while at is not None and len(out) < count:
        out.append(at)
        at = next_after(schedule.cron, schedule.timezone, at)
    return out


def schedule_state(schedule: Schedule) -> str:
    """active, paused or stopped."""
    if schedule.stopped_at is not None:
        return "stopped"
    return "active" if schedule.active else "paused"


def queue_due(db: Database, now: dt.datetime,
              max_lateness: dt.timedelta = dt.timedelta(days=1)) -> int:
    """Turn every occurrence due within LOOKAHEAD into a message; returns how many.

    Each schedule in its own transaction: a failure (a duplicate the database refused,
    say) costs that schedule's round, not the others'.
    """
    with db.read() as s:
        ids = s.scalars(select(Schedule.id).where(
            Schedule.active, Schedule.next_at.is_not(None),
            Schedule.next_at <= now + LOOKAHEAD)).all()
    made = 0
    for schedule_id in ids:
        try:
            made += queue_round(db, schedule_id, now, max_lateness)
        except IntegrityError:
            # Another worker made these occurrences' messages (the origin keys are unique).
            log.warning("action=schedule_duplicate_refused schedule=%s", schedule_id)
        except Exception:  # noqa: BLE001 - one schedule must not stop the others
            log.exception("action=schedule_round_failed schedule=%s", schedule_id)
    return made


def _due_occurrences(schedule: Schedule, now: dt.datetime, max_lateness: dt.timedelta):
    """([(occurrence, how)], the next occurrence to look at): how is None (on time),
    "catch_up" (missed, send now) or "hold" (missed, held for a person)."""
    horizon, late_before = now + LOOKAHEAD, now - max_lateness
    made: list[tuple[dt.datetime, str | None]] = []
    at, steps, latest_missed = schedule.next_at, 0, None
    while (at is not None and at <= horizon and len(made) < MAX_PER_ROUND
           and steps < MAX_STEPS):
        steps += 1
        if at < late_before and schedule.catch_up == "latest":
            latest_missed = at  # only the most recent missed one goes
        else:
            if latest_missed is not None:
                made.append((latest_missed, "catch_up"))
                latest_missed = None
            made.append((at, None if at >= late_before else
                         "catch_up" if schedule.catch_up == "all" else "hold"))
        at = next_after(schedule.cron, schedule.timezone, at)
    # Stopped inside the missed stretch (MAX_STEPS): a later round finds a later one.
    if latest_missed is not None and (at is None or at > horizon):
        made.append((latest_missed, "catch_up"))
    return made, at


@dataclass(frozen=True)
class Round:
    """One schedule's due occurrences, checked and rendered, before anything is written."""

    schedule_id: int
    first: dt.datetime  # next_at as read: the round is stored only if it is still that
    following: dt.datetime | None
    prepared: tuple = ()
    stop: str | None = None  # why the schedule must stop (its template is gone, say)


def plan_round(s: Session, schedule_id: int, now: dt.datetime,
               max_lateness: dt.timedelta = dt.timedelta(days=1)) -> Round | None:
    """Read and render one schedule's occurrences due within LOOKAHEAD (a read
    transaction is enough: nothing is written here).

    Occurrences missed by more than `max_lateness` (the workers were down) follow the
    schedule's `catch_up`: "latest" sends the most recent one now, "all" each of them
    now, "hold" holds them for a person to send or cancel.
    """
    schedule = s.get(Schedule, schedule_id)
    if schedule is None or not schedule.active or schedule.next_at is None:
        return None
    due, following = _due_occurrences(schedule, now, max_lateness)
    prepared = []
    for at, how in due:
        hold = None
        if how == "hold":
            hold = ("too_late", f"the {at.isoformat()} occurrence was missed (no worker was "
                                f"running); send now or cancel")
        try:
            command = make(NewMessage, to=schedule.to_addr, template_id=schedule.template_id,
                           data={**schedule.data, "occurrence": at.isoformat()},
                           send_at=at if how is None else None)
            prepared.append(messages.prepare_message(
                s, team_id=schedule.team_id, user_id=schedule.created_by, command=command,
                now=now, origin=Origin(
                    kind="schedule", key=f"schedule:{schedule.id}:{at.isoformat()}",
                    schedule_id=schedule.id, hold=hold,
                    note={"schedule_id": schedule.id, "occurrence": at.isoformat(),
                          **({"caught_up": True} if how == "catch_up" else {})})))
        except (InvalidInput, NotFound) as exc:  # the template is gone, say
            return Round(schedule.id, schedule.next_at, following, stop=str(exc))
    return Round(schedule.id, schedule.next_at, following, tuple(prepared))


def store_round(s: Session, planned: Round) -> int:
    """Write a planned round; returns how many messages it queued.

    next_at advances only from the value the round was planned from: two workers cannot
    queue it twice (and the messages' origin keys would refuse it if they did).
    """
    if planned.stop is not None:
        log.warning("action=schedule_stopped schedule=%s reason=%s", planned.schedule_id,
                    planned.stop)
        s.execute(update(Schedule).where(Schedule.id == planned.schedule_id,
                                         Schedule.next_at == planned.first)
                  .values(active=False, next_at=None, stopped_at=utcnow(),
                          stop_reason=planned.stop))
        return 0
    moved = rowcount(s.execute(update(Schedule).where(Schedule.id == planned.schedule_id,
                                             Schedule.next_at == planned.first)
                      .values(next_at=planned.following,
                              occurrences=Schedule.occurrences + len(planned.prepared))
                      .execution_options(synchronize_session=False)))
    if not moved:
        return 0
    for prepared in planned.prepared:
        messages.store_message(s, prepared)
    s.flush()
    return len(planned.prepared)


def queue_round(db: Database, schedule_id: int, now: dt.datetime,
                max_lateness: dt.timedelta = dt.timedelta(days=1)) -> int:
    """plan_round in a read transaction, store_round in a write one."""
    with db.read() as s:
        planned = plan_round(s, schedule_id, now, max_lateness)
    if planned is None:
        return 0
    with db.write() as s:
        return store_round(s, planned)


def schedule_as_dict(schedule: Schedule) -> dict:
    """The API representation."""
    return {"id": schedule.id, "name": schedule.name, "cron": schedule.cron,
            "timezone": schedule.timezone, "template_id": schedule.template_id,
            "to": schedule.to_addr, "data": schedule.data, "active": schedule.active,
            "state": schedule_state(schedule), "stop_reason": schedule.stop_reason,
            "next_at": schedule.next_at.isoformat() if schedule.next_at else None,
            "occurrences": schedule.occurrences, "catch_up": schedule.catch_up,
            "created_at": schedule.created_at.isoformat()}


def get_schedule(session: Session, team_id: int, schedule_id) -> Schedule:
    """The team's schedule, or NotFound."""
    return lookup.team_row(session, Schedule, team_id, schedule_id, "schedule")
