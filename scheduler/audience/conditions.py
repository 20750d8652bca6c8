"""Conditions on an event's data (`data.x`) and a contact's fields (`contact.x`): what
rules and segments test."""
from __future__ import annotations

from scheduler.store.models import Contact


def _lookup(path: str, event_data: dict, contact: Contact):
    source, _, rest = path.partition(".")
    value = event_data if source == "data" else {
        **(contact.attributes or {}), "email": contact.email, "name": contact.name,
        "timezone": contact.timezone, "subscription": contact.subscription}
    for key in rest.split("."):
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def matches(conditions: list[dict], event_data: dict, contact: Contact) -> bool:
    """All conditions hold (numbers compare as numbers, text as text)."""
    for c in conditions:
        found, value = _lookup(c["field"], event_data, contact)
        op, wanted = c["op"], c.get("value")
        if op == "exists":
            ok = found and value is not None
        elif not found:
            ok = op == "not_equals"
        elif op == "equals":
            ok = value == wanted or str(value) == str(wanted)
        elif op == "not_equals":
            ok = not (value == wanted or str(value) == str(wanted))
        elif op == "contains":
            ok = (wanted in value) if isinstance(value, (list, dict)) else \
                str(wanted).lower() in str(value).lower()
        else:
            try:
                a, b = float(value), float(wanted)  # type: ignore[arg-type]  # refused below
            except (TypeError, ValueError):
                return False
            ok = a > b if op == "greater" else a < b
        if not ok:
            return False
    return True
