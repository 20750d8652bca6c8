"""Input sanity shared by every way data comes in (JSON bodies, forms, CSV rows).

JSON is parsed with a nesting limit (Python's parser would recurse until it fails), and
no string in it may hold a NUL or a lone surrogate (neither can be stored or sent): each
is refused with the path of the value, like `data.items[3].name`.
"""
from __future__ import annotations

import json
import math

from scheduler.errors import DomainError, InvalidInput

MAX_DEPTH = 32


class Malformed(DomainError):
    """A body that is not JSON at all (400)."""

    code = "malformed"


def _depth_ok(raw: str) -> bool:
    if raw.count("[") + raw.count("{") <= MAX_DEPTH:
        return True
    depth, in_string, escaped = 0, False, False
    for c in raw:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif c in "]}":
            depth -= 1
    return True


def bad_text(value: str) -> str | None:
    """Why a string cannot be taken (a NUL, a lone surrogate), or None."""
    if "\x00" in value:
        return "holds a NUL character"
    if any("\ud800" <= c <= "\udfff" for c in value):
        return "holds a lone surrogate (not valid Unicode)"
    return None


def problem(value, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(path, why) of the first value in `value` that cannot be taken: a string (keys
    included) that bad_text refuses, a number that is not finite, or nesting deeper than
    MAX_DEPTH; None when all is well."""
    if depth > MAX_DEPTH:
        return path, f"nests deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        why = bad_text(value)
        return (path, why) if why else None
    if isinstance(value, float) and not math.isfinite(value):
        return path, "must be a finite number"
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found = problem(key, where, depth) or problem(item, where, depth + 1)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = problem(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
    return None


def check(value, path: str = "") -> None:
    """InvalidInput naming the first value in `value` that `problem` refuses."""
    found = problem(value, path)
    if found:
        where, why = found
        raise InvalidInput(f"{where or 'the body'} {why}", field=where or None)


def _no_constant(name: str):
    # Python's parser takes NaN and Infinity, which JSON does not have.
    raise ValueError(f"{name} is not JSON")


def number(text, field: str, *, whole: bool = False, minimum: float = 0,
           maximum: float = 10 ** 9) -> float | int:
    """A number from a form field: finite, within [minimum, maximum]; InvalidInput naming
    `field` otherwise."""
    try:
        value = int(text) if whole else float(text)
    except (TypeError, ValueError, OverflowError):
        kind = "a whole number" if whole else "a number"
        raise InvalidInput(f"{field} must be {kind}", field=field) from None
    if value != value or not minimum <= value <= maximum:  # NaN is not equal to itself
        raise InvalidInput(f"{field} must be between {minimum:g} and {maximum:g}",
                           field=field)
    return value


def loads(raw: bytes | str, field: str | None = None):
    """Parse JSON from a request: Malformed (400) when it is not JSON or nests deeper than
    MAX_DEPTH; InvalidInput (422) naming the value that holds a NUL or lone surrogate."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("the body is not UTF-8", field=field) from None
    if not _depth_ok(raw):
        raise Malformed(f"the JSON nests deeper than {MAX_DEPTH} levels", field=field)
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise Malformed(f"{field or 'the body'} is not valid JSON", field=field) from None
    check(value, field or "")
    return value
