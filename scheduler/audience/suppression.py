"""Suppression: addresses that unsubscribed or bounced are not mailed again (except
transactional mail), and the read the release makes before every send."""
from __future__ import annotations

import datetime as dt

from prometheus_client import Counter
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from scheduler.store.models import Contact, table

UNSUBSCRIBES = Counter("mailrelease_unsubscribes", "Unsubscribes", ["how"])



def suppress(session: Session, team_id: int, email: str, state: str, reason: str,
             now: dt.datetime) -> bool:
    """Mark an address unsubscribed or bounced (creating its contact if needed).

    Returns True when its state changed.
    """
    email = email.strip().lower()
    contact = session.scalar(select(Contact).where(Contact.team_id == team_id,
                                                   Contact.email == email))
    if contact is None:
        session.add(Contact(team_id=team_id, email=email, attributes={}, subscription=state,
                            subscription_reason=reason, subscription_changed_at=now,
                            created_at=now, updated_at=now))
        return True
    if contact.subscription == state or (contact.subscription == "bounced"
                                         and state == "unsubscribed"):
        return False
    contact.subscription, contact.subscription_reason = state, reason
    contact.subscription_changed_at = contact.updated_at = now
    return True



_C = table(Contact)



# Read before every non-transactional send: built once, with bind parameters.
_SUBSCRIPTION = select(_C.c.subscription, _C.c.subscription_reason).where(
    _C.c.team_id == bindparam("b_team"), _C.c.email == bindparam("b_email"))



def subscription_of(session, team_id: int, address: str) -> tuple[str, str | None] | None:
    """(state, reason) of an address's contact, or None when it is not a contact."""
    row = session.execute(_SUBSCRIPTION, {"b_team": team_id,
                                          "b_email": address.strip().lower()}).first()
    return (row[0], row[1]) if row else None
