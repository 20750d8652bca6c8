"""Segments: saved audiences (a name and conditions on contact fields) that campaigns and
compose send to, with their live size."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler.audience import conditions as conditions_of
from scheduler.commands import NewSegment
from scheduler.errors import Conflict, InvalidInput
from scheduler.store import audit, lookup
from scheduler.store.audit import Actor
from scheduler.store.models import Contact, Segment

COUNT_BATCH = 5000


def checked_conditions(command: NewSegment) -> list[dict]:
    """The conditions as stored; 422 naming the condition whose field is not a contact's."""
    out = [c.model_dump() for c in command.conditions]
    for i, c in enumerate(out):
        if not c["field"].startswith("contact."):
            raise InvalidInput("a segment's fields start with contact. (like contact.plan)",
                               field=f"conditions[{i}].field")
    return out


def save_segment(session: Session, actor: Actor, command: NewSegment, now: dt.datetime,
                 segment_id=None) -> Segment:
    """Create a segment, or change one (`segment_id`); a name is the team's once."""
    conditions = checked_conditions(command)
    if segment_id is None:
        segment = Segment(team_id=actor.team_id, name=command.name, conditions=conditions,
                          created_by=actor.user_id, created_at=now)
        session.add(segment)
        what = "saved a segment"
    else:
        segment = get_segment(session, actor.team_id, segment_id)
        segment.name, segment.conditions = command.name, conditions
        what = "changed a segment"
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"a segment named {command.name!r} exists already",
                       field="name") from None
    audit.record(session, actor, what, f"segment {segment.id}", {"name": segment.name}, now)
    return segment


def delete_segment(session: Session, actor: Actor, segment_id, now: dt.datetime) -> None:
    """Forget a segment (campaigns queued to it keep their messages)."""
    segment = get_segment(session, actor.team_id, segment_id)
    session.delete(segment)
    audit.record(session, actor, "deleted a segment", f"segment {segment.id}",
                 {"name": segment.name}, now)


def get_segment(session: Session, team_id: int, segment_id) -> Segment:
    """The team's segment, or NotFound."""
    return lookup.team_row(session, Segment, team_id, segment_id, "segment",
                           field="segment_id")


def list_segments(session: Session, team_id: int) -> list[Segment]:
    """The team's segments by name."""
    return list(session.scalars(select(Segment).where(Segment.team_id == team_id)
                                .order_by(Segment.name)))


_COLUMNS = {"email": Contact.email, "name": Contact.name, "timezone": Contact.timezone,
            "subscription": Contact.subscription}
_SEEN = (Contact.id, Contact.attributes, Contact.email, Contact.name, Contact.timezone,
         Contact.subscription)


def _plain_text(value) -> bool:
    """A text that no number, boolean, null or list can equal when written out (the
    rules compare `str(value)` too): then SQL's comparison of the stored text decides
    exactly as `conditions.matches` does."""
    if not isinstance(value, str) or value in ("True", "False", "None") or \
            value.strip()[:1] in ("[", "{"):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def as_sql(condition: dict):
    """The condition as a SQL test that decides exactly as `conditions.matches` does, or
    None when only Python can (contains, greater, less, nested fields, a number)."""
    path = condition["field"].removeprefix("contact.")
    op, wanted = condition["op"], condition.get("value")
    if "." in path:
        return None
    # A contact's own fields come before an attribute of the same name, as in matches().
    value = _COLUMNS[path] if path in _COLUMNS else Contact.attributes[path].as_string()
    if op == "exists":
        return value.is_not(None)
    if not _plain_text(wanted):
        return None
    if op == "equals":
        return value == wanted
    if op == "not_equals":
        return or_(value.is_(None), value != wanted)
    return None


def count(session: Session, team_id: int, conditions: list[dict]) -> dict:
    """How many contacts match, and how many of them may get mail (subscribed).

    The conditions SQL can decide are counted by the database (one grouped count); the
    rest are checked in Python on the contacts the others leave, a batch at a time.
    """
    tests = [(c, as_sql(c)) for c in conditions]
    where = [Contact.team_id == team_id, *(sql for _, sql in tests if sql is not None)]
    rest = [c for c, sql in tests if sql is None]
    if not rest:
        rows = session.execute(select(Contact.subscription, func.count()).where(*where)
                               .group_by(Contact.subscription)).all()
        by_state = {state: n for state, n in rows}
        return {"matching": sum(by_state.values()), "subscribed": by_state.get("subscribed", 0)}
    matching = subscribed = 0
    after = 0
    while True:  # in id order, a batch at a time: the team may be large
        batch = session.execute(select(*_SEEN).where(*where, Contact.id > after)
                                .order_by(Contact.id).limit(COUNT_BATCH)).all()
        if not batch:
            break
        for row in batch:
            if conditions_of.matches(rest, {}, row):  # type: ignore[arg-type]
                matching += 1
                subscribed += row.subscription == "subscribed"
        after = batch[-1].id
    return {"matching": matching, "subscribed": subscribed}


def segment_as_dict(segment: Segment) -> dict:
    """The API representation."""
    return {"id": segment.id, "name": segment.name, "conditions": segment.conditions,
            "created_at": segment.created_at.isoformat()}


def describe(conditions: list[dict]) -> str:
    """The conditions in words: 'plan equals pro and country equals FR'."""
    words = {"equals": "is", "not_equals": "is not", "exists": "is set",
             "contains": "contains", "greater": "is more than", "less": "is less than"}
    parts = []
    for c in conditions:
        name = c["field"].removeprefix("contact.")
        op = words.get(c["op"], c["op"])
        parts.append(f"{name} {op}" + ("" if c["op"] == "exists" else f" {c.get('value')}"))
    return " and ".join(parts) or "every contact"
