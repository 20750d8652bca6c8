"""POST /hooks/gmail-push: Gmail's notifications pushed by Cloud Pub/Sub, answered 2xx only
once stored (a worker then reads the mailbox). Each request's `Authorization: Bearer` OIDC
token must be Google's, for MAILRELEASE_PUBSUB_PUSH_AUDIENCE, from the service account
MAILRELEASE_PUBSUB_PUSH_SERVICE_ACCOUNT; anything else is refused and stores nothing."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from app import ctx
from gmail_client.oidc import InvalidToken
from gmail_client.pubsub import gmail_notification
from scheduler.store.db import utcnow
from scheduler.store.models import MailboxNotification

log = logging.getLogger("mailrelease.push")
bp = Blueprint("hooks", __name__)


def _refused(status: int, message: str):
    return jsonify({"error": {"code": "unauthorized" if status == 401 else "forbidden",
                              "message": message}}), status


@bp.post("/hooks/gmail-push")
def gmail_push():
    """Store one pushed notification ({"message": {"data": base64 JSON of emailAddress and
    historyId}, "subscription"}); 204 once stored."""
    c = ctx()
    settings = c.settings
    if not (settings.pubsub_push_audience and settings.pubsub_push_service_account):
        return _refused(403, "push notifications are not configured")
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return _refused(401, "a Bearer token from Pub/Sub is required")
    try:
        c.wiring.google_tokens.verify(header[7:], settings.pubsub_push_audience,
                                      settings.pubsub_push_service_account)
    except InvalidToken as exc:
        log.warning("action=push_refused reason=%s", " ".join(str(exc).split())[:200])
        return _refused(401, "the token is not Google's for this endpoint")
    body = request.get_json(silent=True)
    read = gmail_notification(body.get("message") if isinstance(body, dict) else None)
    if read is None:
        # Not a Gmail notification: acknowledged (a non-2xx would be retried forever).
        log.warning("action=push_unreadable")
        return "", 204
    email, history = read
    with c.db.write() as s:
        s.add(MailboxNotification(email=email[:320], received_at=utcnow(),
                                  history_id=history[:40] if history else None))
    c.wake_worker()
    return "", 204
