"""REST API under /api/v1: JSON, Bearer tokens, the contract's error shape."""
from __future__ import annotations

import logging
from functools import wraps
from typing import Annotated

from flask import Blueprint, g, jsonify, request
from pydantic import Field
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from app import ctx, idempotent
from app.api.endpoint import Query, check_answer
from app.api.openapi import document
from app.auth import READS
from app.tokens import authenticate, needs_touch, touch
from scheduler.audience import teams
from scheduler.errors import DomainError
from scheduler.store import idempotency
from scheduler.store.db import utcnow

log = logging.getLogger("mailrelease.api")
bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_LIMIT = 500


def error(status: int, code: str, message: str, field: str | None = None):
    """The contract's error body."""
    body = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    return jsonify(body), status


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    return _with_retry_after(error(exc.status, exc.code, exc.message, exc.field),
                             exc.retry_after)


def _with_retry_after(answer, seconds: int | None):
    resp, status = answer
    if seconds is not None:
        resp.headers["Retry-After"] = str(seconds)
    return resp, status


@bp.errorhandler(idempotency.Replay)
def _replay(exc: idempotency.Replay):
    return idempotent.replayed(exc)


@bp.after_request
def _idempotency_header(resp):
    resp = idempotent.mark_fresh(resp)
    return check_answer(resp) if ctx().db.self_check else resp


@bp.errorhandler(IntegrityError)
def _concurrent_write(exc: IntegrityError):
    # Two requests wrote the same unique thing at once; the loser's transaction was
    # rolled back whole, so a retry sees the winner's row.
    log.warning("action=api_integrity_conflict path=%s error=%s", request.path,
                " ".join(str(exc.orig).split())[:300])
    return _with_retry_after(error(409, "conflict", "another request changed the same "
                                   "thing at the same moment; nothing was saved from this "
                                   "one: send it again"), 1)


@bp.errorhandler(OperationalError)
def _database_unavailable(exc: OperationalError):
    log.warning("action=api_database_unavailable path=%s", request.path)
    return _with_retry_after(error(503, "unavailable", "the database is not answering; "
                                   "nothing was saved: send it again in a moment"), 5)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """An HTTP error in the API's shape (a 405 says which methods are allowed)."""
    codes = {400: "malformed", 404: "not_found", 405: "method_not_allowed",
             413: "too_large", 415: "unsupported_media_type"}
    resp, status = error(exc.code or 500, codes.get(exc.code, "http_error"),
                         exc.description or "")
    for name, value in exc.get_headers():
        if name.lower() == "allow":
            resp.headers["Allow"] = value
    return resp, status


def require_token(view):
    """Authenticate `Authorization: Bearer <token>`; sets g.user_id and g.team_id."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error(401, "unauthorized", "send Authorization: Bearer <token> "
                         "(create one with `mailrelease token create`)")
        ctx().throttle.check()
        db, now = ctx().db, utcnow()
        # A read: API calls must not queue on the database's write lock just to authenticate.
        with db.read() as s:
            row = authenticate(s, token.strip(), now)
            if row is None:
                ctx().throttle.failed()
                return error(401, "unauthorized", "the API token is unknown or revoked")
            g.user_id, g.team_id, g.token_name = row.user_id, row.team_id, row.name
            g.role = teams.role_of(s, row.user_id, row.team_id)
            stale = needs_touch(row, now)
        if g.role is None:
            return error(401, "unauthorized", "the token's user is no longer a member of "
                         "its team")
        if request.method not in READS and g.role == "viewer":
            return error(403, "forbidden", "this token's user is a viewer in the team: "
                         "viewers can only read")
        if stale:
            with db.write() as s:
                touch(s, row.id, now)
        return view(*args, **kwargs)
    return wrapper


class Listing(Query):
    """?limit= (1 to MAX_LIMIT) and ?cursor= of a list."""

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 100
    cursor: Annotated[str, Field(max_length=200)] | None = None


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of this API (generated from the routes' declarations)."""
    return jsonify(document())



# One blueprint per feature, nested under this one (which gives them /api/v1, the error
# shape and the answer check).
from app.api import automation, contacts, messages, replies, team, templates  # noqa: E402

FEATURES = (messages.bp, templates.bp, contacts.bp, automation.bp, team.bp, replies.bp)
for _feature in FEATURES:
    bp.register_blueprint(_feature)
