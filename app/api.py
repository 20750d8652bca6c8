"""REST API under /api/v1: JSON, Bearer tokens, the contract's error shape."""
from __future__ import annotations

import logging
from functools import wraps
from typing import Annotated, Literal

from flask import Blueprint, g, jsonify, request
from pydantic import Field
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from app import actor, ctx, idempotent, responses
from app.auth import READS
from app.endpoint import Query, check_answer, route
from app.openapi import document
from app.tokens import authenticate, needs_touch, touch
from scheduler import commands
from scheduler.audience import teams
from scheduler.engine import cancelling, messages
from scheduler.errors import DomainError
from scheduler.store import idempotency
from scheduler.store.db import utcnow
from scheduler.store.models import MESSAGE_STATUSES
from scheduler.typed import Id

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


class MessageQuery(Listing):
    """Filters of GET /messages."""

    status: Literal[tuple(MESSAGE_STATUSES)] | None = None  # type: ignore[valid-type]
    account_id: Id | None = None
    campaign_id: Id | None = None
    rule_id: Id | None = None
    q: Annotated[str, Field(max_length=200)] | None = None


@route(bp, "POST", "/messages", body=commands.NewMessage, answers={201: responses.Message},
       role="member")
def create_message(body: commands.NewMessage):
    """Queue a personalized message (201); it is sent at its time by the worker."""
    c = ctx()
    # Checked and rendered in a read transaction: a slow template never holds the write
    # lock that every other team's requests and sends need.
    with c.db.read() as s:
        prepared = messages.prepare_message(s, team_id=g.team_id, user_id=g.user_id,
                                            command=body, now=utcnow())
    with c.db.write() as s:
        held = idempotent.claim(s)
        message = messages.store_message(s, prepared, actor())
        out = messages.message_as_dict(message)
        idempotency.remember(s, held, 201, out)
        release_at = message.release_at
    if out["status"] == "scheduled":
        c.wake_worker(release_at)
    return jsonify(out), 201


@route(bp, "GET", "/messages", query=MessageQuery,
       answers={200: responses.Page[responses.Message]})
def list_messages(query: MessageQuery):
    """The team's messages, newest first, with a cursor."""
    with ctx().db.read() as s:
        items, cursor = messages.list_messages(
            s, g.team_id, status=query.status, cursor=query.cursor, limit=query.limit,
            filters={k: getattr(query, k) for k in ("account_id", "campaign_id",
                                                    "rule_id", "q")})
        return jsonify({"items": [messages.message_as_dict(m) for m in items],
                        "next_cursor": cursor})


@route(bp, "GET", "/messages/<message_id>", answers={200: responses.Message})
def get_message(message_id):
    """One message with its whole timeline."""
    with ctx().db.read() as s:
        return jsonify(messages.message_as_dict(messages.get_message(s, g.team_id,
                                                                     message_id)))


@route(bp, "POST", "/messages/<message_id>/cancel", answers={200: responses.Message},
       role="member")
def cancel_message(message_id):
    """Cancel unless sending has begun (409 then)."""
    c = ctx()
    return jsonify(cancelling.cancel(c.db, c.gmail, actor(), message_id, utcnow()))


@route(bp, "POST", "/messages/<message_id>/send-now", answers={200: responses.Message},
       role="member")
def send_now(message_id):
    """Release an open message immediately."""
    c = ctx()
    with c.db.read() as s:  # a held message is rendered again before the write
        messages.check_send_now(s, g.team_id, message_id)
    with c.db.write() as s:
        out = messages.message_as_dict(
            messages.send_now(s, actor(), message_id, utcnow()))
    c.wake_worker()
    return jsonify(out)


@route(bp, "PATCH", "/messages/<message_id>", body=commands.MessageChange,
       answers={200: responses.Message}, role="member")
def update_message(message_id, body: commands.MessageChange):
    """Reschedule or edit while not yet sending."""
    c = ctx()
    now = utcnow()
    with c.db.read() as s:  # checked and rendered before the write transaction
        change = messages.prepare_change(s, g.team_id, message_id, body, now, g.user_id)
    with c.db.write() as s:
        message = messages.apply_change(s, actor(), change, now)
        out = messages.message_as_dict(message)
        release_at = message.release_at
    if out["status"] == "scheduled":
        c.wake_worker(release_at)
    return jsonify(out)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of this API (generated from the routes' declarations)."""
    return jsonify(document())

