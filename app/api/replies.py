"""Support replies in the API: a mailbox's recent Gmail threads, and a reply in one."""
from __future__ import annotations

from typing import Annotated

from flask import Blueprint, g, jsonify
from pydantic import Field

from app import gmail_threads as threads
from app.api import responses
from app.api.endpoint import Query, route
from app.audit import changes_nothing
from scheduler import commands
from scheduler.typed import Id

bp = Blueprint("replies", __name__)


class ThreadQuery(Query):
    """Which mailbox, what to look for (Gmail's search syntax), how many."""

    account_id: Id | None = None
    q: Annotated[str, Field(max_length=500)] = ""
    limit: Annotated[int, Field(ge=1, le=50)] = 20


@route(bp, "GET", "/threads", query=ThreadQuery, answers={200: responses.ThreadPage},
       errors=(404, 502))
def list_threads(query: ThreadQuery):
    """Recent threads of one of the caller's mailboxes (`?account_id=`, `?q=` in Gmail's
    search syntax, `?limit=` up to 50): subject, customer, last Message-ID."""
    account, found = threads.recent(g.team_id, g.user_id, query.account_id, query.q,
                                    query.limit)
    return jsonify({"account": account.email, "items": [t.as_dict() for t in found],
                    "next_cursor": None})


@route(bp, "POST", "/threads/<thread_id>/reply", body=commands.ThreadReply,
       answers={201: responses.Message}, role="member", errors=(502,))
def reply_in_thread(thread_id, body: commands.ThreadReply):
    """Queue a reply in a Gmail thread (201): `template_id` (a saved reply) or `html`
    (+ `text`), optional `account_id`, `from` (an alias of that mailbox), `data` and
    timing as for messages."""
    return jsonify(threads.reply(g.team_id, g.user_id, body.account_id, thread_id,
                                 body)), 201


@route(bp, "POST", "/threads/<thread_id>/reply/preview", body=commands.ThreadReply,
       answers={200: responses.ReplyPreview}, errors=(502,))
@changes_nothing
def preview_reply(thread_id, body: commands.ThreadReply):
    """The reply rendered for the thread's customer, nothing queued."""
    return jsonify(threads.preview(g.team_id, g.user_id, body.account_id, thread_id, body))
