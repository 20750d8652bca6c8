"""The messages of the API: create, list, read, cancel, send now, change."""
from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint, g, jsonify
from pydantic import Field

from app import actor, ctx, idempotent
from app.api import Listing, responses
from app.api.endpoint import route
from scheduler import commands
from scheduler.engine import cancelling, messages
from scheduler.store import idempotency
from scheduler.store.db import utcnow
from scheduler.store.models import MESSAGE_STATUSES
from scheduler.typed import Id

bp = Blueprint("messages", __name__)


class MessageQuery(Listing):
    """Filters of GET /messages."""

    status: Literal[tuple(MESSAGE_STATUSES)] | None = None  # type: ignore[valid-type]
    account_id: Id | None = None
    campaign_id: Id | None = None
    rule_id: Id | None = None
    q: Annotated[str, Field(max_length=200)] | None = None
    # created: newest first (the default); release: soonest release first;
    # release_desc: latest release first (drafts, without a time, last).
    sort: Literal["created", "release", "release_desc"] = "created"



@route(bp, "POST", "/messages", body=commands.NewMessage, answers={201: responses.Message},
       role="member",
       max_bytes=commands.MAX_REQUEST_WITH_FILES)
def create_message(body: commands.NewMessage):
    """Queue a personalized message (201); it is sent at its time by the worker."""
    c = ctx()
    # Checked and rendered in a read transaction: a slow template never holds the write
    # lock that every other team's requests and sends need.
    with c.db.read() as s:
        prepared = messages.prepare_message(s, team_id=g.team_id, user_id=g.user_id,
                                            command=body, now=utcnow(),
                                            allowed_hosts=c.settings.content_hosts)
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
    """The team's messages, newest first (or by release time: `sort`), with a cursor."""
    with ctx().db.read() as s:
        items, cursor = messages.list_messages(
            s, g.team_id, status=query.status, cursor=query.cursor, limit=query.limit,
            sort=query.sort,
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
