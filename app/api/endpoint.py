"""One way to declare an API route: its typed body and query, who may call it, and what
it answers. The OpenAPI document is generated from these declarations (app/api/openapi.py),
and with MAILRELEASE_SELF_CHECK=1 (the test suite sets it) every answer is checked
against them, so the document cannot drift from the code.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, wraps
from typing import Any

from flask import Blueprint, Response, g, request
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from app.api import responses
from scheduler import sanity
from scheduler.audience import teams
from scheduler.errors import DomainError, InvalidInput
from scheduler.typed import parse, refusal

# Every authenticated route can answer these (bad input, credentials, throttling, the
# database down); each route adds its own (403, 404, 409, 413) by what it does.
COMMON_ERRORS = (400, 401, 422, 429, 503)
ROLES = {"viewer": None, "member": teams.CAN_CHANGE, "owner": teams.CAN_MANAGE}


class Query(BaseModel):
    """A query string: lax types (every value arrives as text), unknown names ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


@dataclass
class Operation:
    """One declared route."""

    method: str
    rule: str  # Flask's, like /messages/<message_id>
    name: str
    summary: str
    description: str
    body: Any = None  # a Command, or a type (a union) the view parses itself
    body_kind: str = "json"  # "json": parsed into `body`; "raw": the view parses; "csv"
    query: type[BaseModel] | None = None
    answers: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    role: str = "viewer"
    auth: str = "token"  # "token", "token_or_signature", "none"

    @property
    def path(self) -> str:
        """The OpenAPI form of the rule: /messages/{message_id}."""
        return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", self.rule)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", self.rule)


OPERATIONS: list[Operation] = []


def json_object() -> dict:
    """The request's JSON object; 400 when it is not JSON, 422 when not an object."""
    if not request.is_json:
        raise DomainError("send a JSON body with Content-Type: application/json",
                          code="malformed")
    body = sanity.loads(request.get_data(cache=True))
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


def read_query(model: type[BaseModel]):
    """The query string as `model`: 422 naming the parameter. An empty parameter
    (`?campaign_id=`, as a form's "any" choice sends it) is one not given."""
    try:
        return model.model_validate({k: v for k in request.args
                                     if (v := request.args.get(k)) != ""})
    except ValidationError as exc:
        raise refusal(exc) from None


def _error_statuses(method: str, rule: str, body: Any, body_kind: str, role: str,
                    auth: str, extra: tuple[int, ...]) -> tuple[int, ...]:
    """Every error status a route can answer, from what it does."""
    found = set(extra) | (set(COMMON_ERRORS) if auth != "none" else set())
    writes = method not in ("GET", "HEAD")
    if writes:
        found |= {409}  # a state that does not allow it, or a concurrent change
    if writes or role != "viewer":
        found |= {403}
    if "<" in rule or body is not None:
        found |= {404}  # ids in the path or the body name rows
    if body is not None or body_kind == "csv":
        found |= {413}
    return tuple(sorted(found))


def route(bp: Blueprint, method: str, rule: str, *, answers: dict,
          body: Any = None, body_kind: str = "json",
          query: type[BaseModel] | None = None, errors: tuple[int, ...] = (),
          role: str = "viewer", action: str | None = None,
          auth: str = "token", max_bytes: int | None = None) -> Callable:
    """Declare an API route. The view gets `body=` and `query=` already typed; `role` is
    checked before it runs (`action` says what was refused); `answers` maps each success
    status to its model (None: no body). `max_bytes` raises the request size limit for
    a route that takes files."""
    def decorate(view: Callable) -> Callable:
        doc = (view.__doc__ or "").strip()
        summary, _, description = doc.partition("\n")
        op = Operation(method.upper(), rule, view.__name__, summary.strip(),
                       " ".join(description.split()), body, body_kind, query, answers,
                       _error_statuses(method.upper(), rule, body, body_kind, role, auth,
                                       errors),
                       role, auth)
        OPERATIONS.append(op)

        @wraps(view)
        def handler(**path_args):
            if max_bytes is not None:
                request.max_content_length = max_bytes
            if ROLES[op.role] is not None:
                teams.require(g.role, ROLES[op.role], action or op.summary.lower())
            kwargs: dict[str, Any] = {}
            if op.body is not None and op.body_kind == "json":
                kwargs["body"] = parse(op.body, json_object())
            if op.query is not None:
                kwargs["query"] = read_query(op.query)
            return view(**path_args, **kwargs)

        wrapped = handler
        if auth == "token":
            from app.api import require_token
            wrapped = require_token(handler)
        bp.add_url_rule(rule, view.__name__, wrapped, methods=[op.method])
        return view
    return decorate


_BY_ENDPOINT: dict[str, Operation] = {}


def operation_of(endpoint: str | None) -> Operation | None:
    """The declaration behind a Flask endpoint name (`api.messages.create_message`)."""
    if not _BY_ENDPOINT:
        _BY_ENDPOINT.update({op.name: op for op in OPERATIONS})
    if not (endpoint or "").startswith("api."):
        return None
    return _BY_ENDPOINT.get(endpoint.rpartition(".")[2])


class Undeclared(AssertionError):
    """An answer its route does not declare (only raised while checking)."""


def check_answer(resp: Response) -> Response:
    """Under test: refuse an answer whose status or body its route does not declare."""
    op = operation_of(request.endpoint)
    if op is None or resp.direct_passthrough or resp.mimetype == "application/x-ndjson":
        return resp
    status = resp.status_code
    if status in op.answers:
        model = op.answers[status]
    elif status in op.errors or status == 405:  # 405: of the path, not the operation
        model = responses.Error
    else:
        raise Undeclared(f"{op.method} {op.rule} answered {status}, which it does not "
                         f"declare: {resp.get_data(as_text=True)[:300]}")
    if model is None:
        if resp.get_data():
            raise Undeclared(f"{op.method} {op.rule} {status} must have no body")
        return resp
    try:
        _adapter(model).validate_json(resp.get_data())
    except ValidationError as exc:
        raise Undeclared(f"{op.method} {op.rule} {status} does not match "
                         f"{getattr(model, '__name__', model)}: {exc}") from None
    return resp


@cache
def _adapter(model) -> TypeAdapter:
    return TypeAdapter(model)


__all__ = ["Operation", "OPERATIONS", "Query", "check_answer", "route"]
