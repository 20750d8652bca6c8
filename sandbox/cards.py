"""Checks an add-on's answers as Gmail would read them: each card against the Card v2 schema
(`GoogleAppsCardV1Card` and its parts) in the Chat v1 discovery document that
google-api-python-client ships, and the answer around the cards (navigations, a
notification, an update of the draft) against the HTTP runtime's shape."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import googleapiclient

INT_FORMATS = {"int32", "int64", "uint32", "uint64"}


@functools.lru_cache(maxsize=1)
def schemas() -> dict:
    """The discovery document's schemas by id."""
    path = (Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
            / "chat.v1.json")
    return json.loads(path.read_text(encoding="utf-8"))["schemas"]


def _check(prop: dict, value, where: str, out: list[str]) -> None:
    if "$ref" in prop:
        _object(prop["$ref"], value, where, out)
        return
    kind = prop.get("type")
    if kind == "string":
        if prop.get("format") in INT_FORMATS:
            if isinstance(value, bool) or not (isinstance(value, int) or (
                    isinstance(value, str) and value.lstrip("-").isdigit())):
                out.append(f"{where}: an integer (as a string) expected, got {value!r}")
            return
        if not isinstance(value, str):
            out.append(f"{where}: a string expected, got {type(value).__name__}")
        elif "enum" in prop and value not in prop["enum"]:
            out.append(f"{where}: {value!r} is not one of {', '.join(prop['enum'])}")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            out.append(f"{where}: an integer expected, got {value!r}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.append(f"{where}: a number expected, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(f"{where}: true or false expected, got {value!r}")
    elif kind == "array":
        if not isinstance(value, list):
            out.append(f"{where}: a list expected, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(prop.get("items") or {}, item, f"{where}[{i}]", out)
    elif kind == "object":
        if not isinstance(value, dict):
            out.append(f"{where}: an object expected, got {type(value).__name__}")
        elif "additionalProperties" in prop:
            for key, item in value.items():
                _check(prop["additionalProperties"], item, f"{where}.{key}", out)
        elif "properties" in prop:
            _properties(prop, value, where, out)


def _properties(schema: dict, value: dict, where: str, out: list[str]) -> None:
    known = schema.get("properties") or {}
    for key, item in value.items():
        if key not in known:
            out.append(f"{where}.{key}: not a field of {schema.get('id', 'this object')}")
        else:
            _check(known[key], item, f"{where}.{key}", out)


def _object(name: str, value, where: str, out: list[str]) -> None:
    schema = schemas().get(name)
    if schema is None:
        out.append(f"{where}: unknown schema {name}")
        return
    if schema.get("type") != "object":
        _check(schema, value, where, out)
        return
    if not isinstance(value, dict):
        out.append(f"{where}: an object ({name}) expected, got {type(value).__name__}")
        return
    _properties(schema, value, where, out)


def card_problems(card, where: str = "card") -> list[str]:
    """What in `card` is not Card v2 (an empty list when it all is)."""
    out: list[str] = []
    _object("GoogleAppsCardV1Card", card, where, out)
    if isinstance(card, dict) and not card.get("sections"):
        out.append(f"{where}: a card needs at least one section")
    return out


_NAVIGATION = {"pushCard", "updateCard", "pop", "popToRoot", "popToCard", "endNavigation"}


def _navigations(action, where: str, out: list[str]) -> None:
    if not isinstance(action, dict):
        out.append(f"{where}: an object expected")
        return
    for key in action:
        if key not in ("navigations", "notification", "link"):
            out.append(f"{where}.{key}: not part of an add-on action")
    for i, step in enumerate(action.get("navigations") or []):
        if not isinstance(step, dict) or len(step) != 1 or next(iter(step)) not in _NAVIGATION:
            out.append(f"{where}.navigations[{i}]: one of {', '.join(sorted(_NAVIGATION))}")
            continue
        kind, card = next(iter(step.items()))
        if kind in ("pushCard", "updateCard"):
            out += card_problems(card, f"{where}.navigations[{i}].{kind}")
    note = action.get("notification")
    if note is not None and not (isinstance(note, dict) and isinstance(note.get("text"), str)):
        out.append(f"{where}.notification: {{\"text\": ...}} expected")


def answer_problems(answer) -> list[str]:
    """What in an add-on's answer Gmail could not use (an empty list when nothing)."""
    out: list[str] = []
    if not isinstance(answer, dict):
        return ["the answer is not a JSON object"]
    if "action" in answer:
        _navigations(answer["action"], "action", out)
    elif "renderActions" in answer:
        render = answer["renderActions"]
        if not isinstance(render, dict):
            return ["renderActions: an object expected"]
        if "action" in render:
            _navigations(render["action"], "renderActions.action", out)
        host = render.get("hostAppAction")
        if host is not None:
            update = ((host.get("gmailAction") or {}).get("updateDraftActionMarkup") or {}
                      ) if isinstance(host, dict) else {}
            body = update.get("updateBody") or {}
            contents = body.get("insertContents")
            if not isinstance(contents, list) or not all(
                    isinstance(x, dict) and isinstance(x.get("content"), str)
                    and x.get("contentType") in ("TEXT", "MUTABLE_HTML", "IMMUTABLE_HTML")
                    for x in contents):
                out.append("renderActions.hostAppAction: updateDraftActionMarkup.updateBody."
                           "insertContents with content and contentType expected")
            if body.get("type") not in ("IN_PLACE_INSERT", "INSERT_AT_START",
                                        "INSERT_AT_END", "REPLACE"):
                out.append("renderActions.hostAppAction: updateBody.type expected")
        if "action" not in render and host is None:
            out.append("renderActions: an action or a hostAppAction expected")
    else:
        out.append("the answer has neither action nor renderActions")
    return out
