"""Finding one of a team's rows by id, the same way everywhere."""
from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.errors import InvalidInput, NotFound

# ASCII digits only: str.isdigit() also takes '³', which int() refuses.
_DIGITS = re.compile(r"^[0-9]{1,10}$")


def path_id(raw) -> int | None:
    """An id as the database keeps them (a positive 32-bit integer) from a path or a body,
    or None when `raw` cannot be one (then it is simply not found, never a database
    error)."""
    if isinstance(raw, str) and _DIGITS.fullmatch(raw):
        value = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        return None
    return value if 0 < value < 2 ** 31 else None


def team_row(session: Session, model, team_id: int, raw_id, what: str, field: str = "id"):
    """The team's `model` row with this (integer) id; NotFound, naming `field`, when there
    is none or it is another team's (the two are not told apart)."""
    # Ids are positive 32-bit integers (as the database keeps them): anything else is
    # simply not found, never a database error.
    row_id = path_id(raw_id)
    if row_id is None:
        raise NotFound(f"no {what} {str(raw_id)[:40]}", field=field)
    row = session.scalar(select(model).where(model.id == row_id, model.team_id == team_id))
    if row is None:
        raise NotFound(f"no {what} {raw_id}", field=field)
    return row


MAX_ID = 2 ** 31 - 1


def query_id(value, field: str, message: str | None = None) -> int | None:
    """An id (or a keyset cursor) from a query string: None when empty; InvalidInput
    naming `field` unless it is a whole number from 0 to MAX_ID."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not _DIGITS.fullmatch(text) or int(text) > MAX_ID:
        raise InvalidInput(message or f"{field} must be an id", field=field)
    return int(text)
