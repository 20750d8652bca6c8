"""Support replies in the API: a mailbox's recent Gmail threads, and a reply in one."""
from __future__ import annotations

from flask import g, jsonify, request

from app import threads
from app.api import bp, json_body, require_token
from scheduler.errors import InvalidInput


@bp.get("/threads")
@require_token
def list_threads():
    """Recent threads of one of the caller's mailboxes (`?account_id=`, `?q=` in Gmail's
    search syntax, `?limit=` up to 50): subject, customer, last Message-ID."""
    try:
        limit = int(request.args.get("limit", 20))
    except ValueError:
        raise InvalidInput("limit must be a whole number", field="limit") from None
    account, found = threads.recent(g.team_id, g.user_id, request.args.get("account_id"),
                                    request.args.get("q", ""), limit)
    return jsonify({"account": account.email, "items": [t.as_dict() for t in found],
                    "next_cursor": None})


@bp.post("/threads/<thread_id>/reply")
@require_token
def reply_in_thread(thread_id):
    """Queue a reply in a Gmail thread (201): `template_id` (a saved reply) or `html`
    (+ `text`), optional `account_id`, `from` (an alias of that mailbox), `data` and
    timing as for messages."""
    body = json_body()
    return jsonify(threads.reply(g.team_id, g.user_id, body.get("account_id"), thread_id,
                                 body)), 201


@bp.post("/threads/<thread_id>/reply/preview")
@require_token
def preview_reply(thread_id):
    """The reply rendered for the thread's customer, nothing queued."""
    body = json_body()
    return jsonify(threads.preview(g.team_id, g.user_id, body.get("account_id"), thread_id,
                                   body))
