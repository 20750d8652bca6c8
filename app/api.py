"""REST API under /api/v1: JSON, Bearer tokens, the contract's error shape."""
from __future__ import annotations

import logging
from functools import wraps

from flask import Blueprint, g, jsonify, request
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from app import ctx, idempotent
from app.openapi import OPENAPI
from app.auth import READS
from app.tokens import authenticate, needs_touch, touch
from scheduler import cancelling, idempotency, messages, sanity, teams
from scheduler.db import utcnow
from scheduler.errors import DomainError, InvalidInput

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
    return idempotent.mark_fresh(resp)


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


def json_body() -> dict:
    """The request's JSON object; 400 when it is not JSON, 422 when not an object."""
    if not request.is_json:
        raise DomainError("send a JSON body with Content-Type: application/json",
                          code="malformed")
    body = sanity.loads(request.get_data(cache=True))
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


def page_limit() -> int:
    """`?limit=` of a list request: 1 to MAX_LIMIT, 100 by default (422 otherwise)."""
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        raise InvalidInput("limit must be a whole number", field="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


def _actor() -> str:
    return f"api:{g.user_id}"


@bp.post("/messages")
@require_token
def create_message():
    """Queue a personalized message (201); it is sent at its time by the worker."""
    c = ctx()
    body = json_body()
    # Checked and rendered in a read transaction: a slow template never holds the write
    # lock that every other team's requests and sends need.
    with c.db.read() as s:
        prepared = messages.prepare_message(s, team_id=g.team_id, user_id=g.user_id,
                                            body=body, now=utcnow())
    with c.db.write() as s:
        held = idempotent.claim(s)
        message = messages.store_message(s, prepared)
        out = messages.message_as_dict(message)
        idempotency.remember(s, held, 201, out)
        release_at = message.release_at
    if out["status"] == "scheduled":
        c.wake_worker(release_at)
    return jsonify(out), 201


@bp.get("/messages")
@require_token
def list_messages():
    """The team's messages, newest first, with a cursor."""
    limit = page_limit()
    with ctx().db.read() as s:
        items, cursor = messages.list_messages(
            s, g.team_id, status=request.args.get("status"), cursor=request.args.get("cursor"),
            limit=limit, filters={k: request.args.get(k) for k in
                                  ("account_id", "campaign_id", "rule_id", "q")})
        return jsonify({"items": [messages.message_as_dict(m) for m in items],
                        "next_cursor": cursor})


@bp.get("/messages/<message_id>")
@require_token
def get_message(message_id):
    """One message with its whole timeline."""
    with ctx().db.read() as s:
        return jsonify(messages.message_as_dict(messages.get_message(s, g.team_id,
                                                                     message_id)))


@bp.post("/messages/<message_id>/cancel")
@require_token
def cancel_message(message_id):
    """Cancel unless sending has begun (409 then)."""
    c = ctx()
    return jsonify(cancelling.cancel(c.db, c.settings, c.cipher, g.team_id, message_id,
                                     utcnow(), _actor()))


@bp.post("/messages/<message_id>/send-now")
@require_token
def send_now(message_id):
    """Release an open message immediately."""
    c = ctx()
    with c.db.write() as s:
        out = messages.message_as_dict(
            messages.send_now(s, g.team_id, message_id, utcnow(), _actor()))
    c.wake_worker()
    return jsonify(out)


@bp.patch("/messages/<message_id>")
@require_token
def update_message(message_id):
    """Reschedule or edit while not yet sending."""
    c = ctx()
    body = json_body()
    with c.db.write() as s:
        message = messages.update_message(s, g.team_id, message_id, body, utcnow(), _actor(),
                                          g.user_id)
        out = messages.message_as_dict(message)
        release_at = message.release_at
    if out["status"] == "scheduled":
        c.wake_worker(release_at)
    return jsonify(out)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of this API."""
    return jsonify(OPENAPI)

