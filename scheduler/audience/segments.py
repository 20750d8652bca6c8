"""Segments: saved audiences (a name and conditions on contact fields) that campaigns and
compose send to, with their live size."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
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


def count(session: Session, team_id: int, conditions: list[dict]) -> dict:
    """How many contacts match, and how many of them may get mail (subscribed)."""
    if not conditions:
        rows = session.execute(select(Contact.subscription, func.count()).where(
            Contact.team_id == team_id).group_by(Contact.subscription)).all()
        by_state = {state: n for state, n in rows}
        return {"matching": sum(by_state.values()), "subscribed": by_state.get("subscribed", 0)}
    matching = subscribed = 0
    after = 0
    while True:  # in id order, a batch at a time: the team may be large
        batch = session.scalars(select(Contact).where(
            Contact.team_id == team_id, Contact.id > after).order_by(Contact.id)
            .limit(COUNT_BATCH)).all()
        if not batch:
            break
        for contact in batch:
            if conditions_of.matches(conditions, {}, contact):
                matching += 1
                subscribed += contact.subscription == "subscribed"
        after = batch[-1].id
        session.expunge_all()
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
