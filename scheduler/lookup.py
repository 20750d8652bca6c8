"""Finding one of a team's rows by id, the same way everywhere."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.errors import NotFound


def team_row(session: Session, model, team_id: int, raw_id, what: str, field: str = "id"):
    """The team's `model` row with this (integer) id; NotFound, naming `field`, when there
    is none or it is another team's (the two are not told apart)."""
    try:
        row_id = int(raw_id)
    except (TypeError, ValueError):
        raise NotFound(f"no {what} {raw_id}", field=field) from None
    row = session.scalar(select(model).where(model.id == row_id, model.team_id == team_id))
    if row is None:
        raise NotFound(f"no {what} {raw_id}", field=field)
    return row
