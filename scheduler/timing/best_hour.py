"""The best hour: when people engaged (opened, clicked), read from the messages' history,
for the `best_hour` timing field."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.errors import InvalidInput
from scheduler.store.models import Contact, Message, MessageEvent
from scheduler.timing.release_at import Recipient, plan


def engaged_hours(session: Session, team_id: int, contact_id: int | None,
                  zone: str | None, limit: int = 5000) -> tuple[int, ...]:
    """Hours of the week (0 = Monday 00:00 in `zone`) of people's opens and clicks: of one
    contact, or with contact_id None of the whole team (the most recent `limit`)."""
    query = (select(MessageEvent.at).join(Message, Message.id == MessageEvent.message_id)
             .where(Message.team_id == team_id, MessageEvent.type.in_(("opened", "clicked")))
             .order_by(MessageEvent.id.desc()).limit(limit))
    if contact_id is not None:
        query = query.where(Message.contact_id == contact_id)
    tz = ZoneInfo(zone) if zone else dt.UTC
    out = []
    for at in session.scalars(query):
        local = at.astimezone(tz)
        out.append(local.weekday() * 24 + local.hour)
    return tuple(out)



def recipient_timing(session: Session, team_id: int, contact: Contact | None,
                     timing: dict) -> Recipient:
    """What the timing fields need of the recipient (engagement only for best_hour)."""
    zone = contact.timezone if contact else None
    if not timing.get("best_hour"):
        return Recipient(zone)
    return Recipient(zone, engaged_hours(session, team_id, contact.id if contact else None,
                                         zone),
                     engaged_hours(session, team_id, None, zone))



def best_hour_for(session: Session, team_id: int, contact: Contact | None,
                  now: dt.datetime) -> dict:
    """When `best_hour` would release a message to this recipient (a contact, or None for
    an address that is not one) now, and why."""
    try:
        at, reason = plan({"best_hour": True}, now,
                          recipient_timing(session, team_id, contact, {"best_hour": True}))
    except InvalidInput as exc:
        return {"at": None, "reason": exc.message}
    return {"at": at.isoformat(), "reason": reason}
