"""The building blocks of typed commands (pydantic v2): strict models that refuse unknown
fields, and the value types every command shares, each with its limit.

A value is checked once, where it comes in (the API, a form, a CSV row, a rule); the
domain then works with typed values. A refusal names the value by its path
(`data.items[3].price`), the way `sanity` names JSON values.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from scheduler import sanity
from scheduler.addresses import AddressError, normalize_email, parse_address
from scheduler.errors import InvalidInput

HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
MAX_ID = 2 ** 31 - 1
MAX_PART_BYTES = 2_000_000
MAX_DATA_BYTES = 1_000_000


@lru_cache(maxsize=1024)
def is_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone that tzdata knows."""
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


MIN_YEAR, MAX_YEAR = 1970, 2100


def parse_aware(value, field: str) -> dt.datetime:
    """Parse ISO 8601 with an offset; a naive or malformed time is refused naming `field`."""
    if isinstance(value, dt.datetime):
        when = value
    elif not isinstance(value, str):
        raise InvalidInput(f"{field} must be an ISO 8601 string with an offset", field=field)
    else:
        try:
            when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{field} is not an ISO 8601 time: {value[:40]!r}",
                               field=field) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(f"{field} has no UTC offset; write e.g. 2026-11-23T09:00:00+09:00",
                           field=field)
    if not MIN_YEAR <= when.year <= MAX_YEAR:
        raise InvalidInput(f"{field} must be between {MIN_YEAR} and {MAX_YEAR}", field=field)
    return when.astimezone(dt.UTC)


class Command(BaseModel):
    """A request the domain takes: strict types, no unknown fields, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              populate_by_name=True, allow_inf_nan=False,
                              hide_input_in_errors=True)


def _clean_text(value: str) -> str:
    why = sanity.bad_text(value)
    if why:
        raise ValueError(why)
    return value


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must be one line (no CR or LF)")
    return value


def _part_size(value: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES:
        raise ValueError(f"is larger than {MAX_PART_BYTES} bytes")
    return value


def _address(value: str) -> str:
    try:
        return str(parse_address(value, "address"))
    except InvalidInput as exc:
        raise ValueError(exc.message.removeprefix("address").strip() or "not an address"
                         ) from None


def _bare_email(value: str) -> str:
    try:
        return normalize_email(value)
    except AddressError as exc:
        raise ValueError(str(exc)) from None


def _aware(value: Any) -> dt.datetime:
    try:
        return parse_aware(value, "time")
    except InvalidInput as exc:
        raise ValueError(exc.message.removeprefix("time ")) from None


class Inside(ValueError):
    """A problem deeper inside a JSON value than pydantic's location: `where` is the rest
    of the path ("[1].b")."""

    def __init__(self, where: str, why: str):
        super().__init__(why)
        self.where, self.why = where, why


def _json_value(value: Any) -> Any:
    # JSON bodies were checked by sanity.loads already; forms, CSV rows and rules reach
    # here too, so the same rule holds for them.
    found = sanity.problem(value)
    if found:
        raise Inside(*found)
    return value


def _zone(value: str) -> str:
    if not is_zone(value.strip()):
        raise ValueError(f"is not an IANA time zone (like Europe/Paris): {value[:64]!r}")
    return value.strip()


def _clock(value: str) -> str:
    if not HHMM.match(value):
        raise ValueError("must be a time of day like 09:00")
    return value


def _date(value: str) -> str:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date like 2026-11-24") from None
    if not len(value) == 10:
        raise ValueError("must be a date like 2026-11-24")
    return value


def _data_size(value: dict) -> dict:
    if len(json.dumps(value, default=str)) > MAX_DATA_BYTES:
        raise ValueError(f"it is larger than {MAX_DATA_BYTES} bytes as JSON")
    return value


Text = Annotated[str, AfterValidator(_clean_text)]
"""Any string without NUL or lone surrogates."""
Line = Annotated[str, AfterValidator(_clean_text), AfterValidator(_one_line),
                 StringConstraints(max_length=998)]
"""One line (headers, names, ids from outside): no CR/LF, at most 998 characters."""
Name = Annotated[str, AfterValidator(_clean_text), AfterValidator(_one_line),
                 StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
"""A human name of a thing (template, rule, list): 1 to 200 characters."""
Part = Annotated[str, AfterValidator(_clean_text), AfterValidator(_part_size),
                 WithJsonSchema({"type": "string", "maxLength": MAX_PART_BYTES})]
"""A template part (Jinja2 source): at most MAX_PART_BYTES."""
Address = Annotated[str, AfterValidator(_clean_text), AfterValidator(_address),
                    WithJsonSchema({"type": "string", "maxLength": 998,
                                    "description": "address or \"Name <address>\""})]
"""`addr` or `Name <addr>`, in its ASCII (IDNA) form."""
Email = Annotated[str, AfterValidator(_clean_text), AfterValidator(_bare_email),
                  WithJsonSchema({"type": "string", "format": "email", "maxLength": 254})]
"""A bare address, lower case, ASCII."""
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A row id: a positive 32-bit integer."""
Aware = Annotated[dt.datetime, BeforeValidator(_aware),
                  WithJsonSchema({"type": "string", "format": "date-time"})]
"""ISO 8601 with a UTC offset, years 1970 to 2100; kept in UTC."""
GMAIL_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _gmail_id(value: str) -> str:
    if not GMAIL_ID.fullmatch(value):
        raise ValueError("is not a Gmail id (letters, digits, _ and -)")
    return value


GmailId = Annotated[str, AfterValidator(_gmail_id),
                    WithJsonSchema({"type": "string", "pattern": f"^{GMAIL_ID.pattern}$"})]
"""An id Gmail gave out (a draft, a message, a thread): letters, digits, _ and -."""
Json = Annotated[Any, AfterValidator(_json_value)]
Clock = Annotated[str, AfterValidator(_clock),
                  WithJsonSchema({"type": "string", "pattern": HHMM.pattern,
                                  "description": "a time of day like 09:00"})]
Zone = Annotated[str, AfterValidator(_clean_text), AfterValidator(_zone),
                 WithJsonSchema({"type": "string", "maxLength": 64,
                                 "description": "an IANA time zone like Europe/Paris"})]
Date = Annotated[str, AfterValidator(_date),
                 WithJsonSchema({"type": "string", "format": "date"})]
Data = Annotated[dict[str, Json], AfterValidator(_data_size)]
"""An object of JSON values (personalization data, event data, attributes)."""


def _models(base: type) -> set[str]:
    found: set[str] = set()
    sub: type
    for sub in base.__subclasses__():
        found |= {sub.__name__} | _models(sub)
    return found


def _tag(part: str) -> bool:
    return (part.startswith(("function-", "constrained-", "json-or-python", "literal[",
                             "list[", "dict[", "tagged-union["))
            or part in _models(Command) or part in ("str", "int", "float", "bool"))


def path(loc: tuple) -> str:
    """A pydantic location as the API names fields: `data.items[3].price`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _tag(str(part)):
            continue  # pydantic's names for validators and union members, not fields
        else:
            out += f".{part}" if out else str(part)
    return out


_PHRASES = {
    "extra_forbidden": "is not a field of this request",
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "bool_type": "must be true or false",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "float_type": "must be a number",
}


def _plain(msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    for theirs, ours in (("Input should be", "must be"), ("String should have", "must have"),
                         ("List should have", "must have"), ("Value should have", "must have"),
                         ("Dictionary should have", "must have"),
                         ("String should match pattern", "must match")):
        if msg.startswith(theirs):
            return ours + msg[len(theirs):]
    return msg


def refusal(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """The first error of a ValidationError as the contract's 422, naming the field."""
    found = exc.errors(include_url=False)
    # Of a union's alternatives, the one that matched furthest says what is wrong.
    first = max(found, key=lambda e: len(path(tuple(e["loc"]))))
    field = path(tuple(first["loc"]))
    inner = (first.get("ctx") or {}).get("error")
    if isinstance(inner, Inside) and inner.where:
        field = (field + inner.where) if inner.where.startswith("[") or not field else (
            f"{field}.{inner.where}")
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    text = _PHRASES.get(first["type"]) or _plain(first["msg"])
    return InvalidInput(f"{field or 'the body'} {text}" if field else text,
                        field=field or None)


def parse(model: type[Command], value: Any, prefix: str = ""):
    """`value` as `model`, or InvalidInput (422) naming the first wrong field."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{prefix or 'the body'} must be a JSON object",
                           field=prefix or None)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise refusal(exc, prefix) from None


def make(model: type[Command], **fields):
    """A command built in code (a rule, a schedule, a reply) from values that came in
    elsewhere: refused the same way as a request, InvalidInput naming the field."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise refusal(exc) from None
