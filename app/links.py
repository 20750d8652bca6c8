"""The links inside sent mail: open pixel, click redirect, unsubscribe, AMP live data.

No login and no CSRF token here (mail clients call these): each link is authenticated by
its signed token instead, and a tampered or foreign token is a plain 404.
"""
from __future__ import annotations

import logging
from email.utils import parseaddr
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request

from app import csrf, ctx
from scheduler.audience.suppression import subscription_of
from scheduler.content import sources as content
from scheduler.content.links import Links
from scheduler.delivery import tracking
from scheduler.store.db import utcnow
from scheduler.store.models import Message

bp = Blueprint("links", __name__)
log = logging.getLogger("mailrelease.links")


def _links() -> Links:
    return ctx().links


@bp.get("/t/o/<token>.gif")
def open_pixel(token):
    """Record an open; always the same 1×1 GIF, never cached."""
    message_id = _links().read("open", token)
    if message_id is None:
        abort(404)
    with ctx().db.write() as s:
        tracking.record_open(s, message_id, request.headers.get("User-Agent", ""), utcnow())
    resp = Response(tracking.PIXEL_GIF, mimetype="image/gif")
    resp.headers["Cache-Control"] = "no-store, max-age=0"
    return resp


@bp.route("/t/c/<token>", methods=["GET", "HEAD"])
def click(token):
    """Record a click and redirect to the link the message itself carried."""
    value = _links().read("click", token)
    if not (isinstance(value, list) and len(value) == 2):
        abort(404)
    message_id, url = value
    if urlsplit(url).scheme not in ("http", "https"):
        abort(404)
    with ctx().db.write() as s:
        tracking.record_click(s, message_id, url, request.method, utcnow())
    return redirect(url, code=302)


@bp.get("/u/<token>")
def unsubscribe_page(token):
    """A confirmation page: a GET never unsubscribes (link scanners follow links)."""
    message_id = _links().read("unsubscribe", token)
    if message_id is None:
        abort(404)
    with ctx().db.read() as s:
        message = s.get(Message, message_id)
        if message is None:
            abort(404)
        address = parseaddr(message.to_addr)[1]
        state = subscription_of(s, message.team_id, address)
    return render_template("ui/unsubscribe.html", address=address, done=False,
                           already=state is not None and state[0] != "subscribed")


@bp.post("/u/<token>")
@csrf.exempt
def unsubscribe(token):
    """Unsubscribe: the page's button, or a mail client's RFC 8058 one-click POST."""
    message_id = _links().read("unsubscribe", token)
    if message_id is None:
        abort(404)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    with ctx().db.write() as s:
        message = tracking.unsubscribe(s, message_id, "one-click" if one_click else "link",
                                       utcnow())
        if message is None:
            abort(404)
        address = parseaddr(message.to_addr)[1]
    if one_click:
        return "", 200
    return render_template("ui/unsubscribe.html", address=address, done=True, already=False)


def _amp_cors(resp: Response, sender: str) -> Response | None:
    """The AMP for Email CORS handshake: AMP-Email-Sender, or the older origin form."""
    asked = request.headers.get("AMP-Email-Sender")
    if asked is not None:
        if asked.lower() != sender.lower():
            return None
        resp.headers["AMP-Email-Allow-Sender"] = asked
        return resp
    source_origin = request.args.get("__amp_source_origin")
    if source_origin is not None:
        if source_origin.lower() != sender.lower():
            return None
        origin = request.headers.get("Origin")
        if origin:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Credentials"] = "true"
        resp.headers["AMP-Access-Control-Allow-Source-Origin"] = source_origin
        resp.headers["Access-Control-Expose-Headers"] = "AMP-Access-Control-Allow-Source-Origin"
    return resp


@bp.route("/amp/<token>", methods=["GET", "POST"])
@csrf.exempt
def amp_data(token):
    """GET: the message's source NAME fetched now (for amp-list); POST: an amp-form's
    submission, recorded as an event on the message."""
    value = _links().read("amp", token)
    if not (isinstance(value, list) and len(value) == 2):
        abort(404)
    message_id, name = value
    c = ctx()
    with c.db.read() as s:
        message = s.get(Message, message_id)
        if message is None:
            abort(404)
        sender = message.account.email
        sources = [x for x in message.sources or () if x["name"] == name]
        data = dict(message.data or {})
    if request.method == "POST":
        fields = {k: v[:1000] for k, v in request.form.items()}
        with c.db.write() as s:
            from scheduler.store import queue
            queue.record_event(s, message_id, "amp_form", utcnow(),
                               {"source": name, "fields": fields})
        resp = _amp_cors(jsonify({"ok": True}), sender)
    else:
        if not sources:
            abort(404)
        try:
            values, _ = c.content.fetch(sources, data)
            body = values[name]
        except content.ContentUnavailable as exc:
            log.warning("action=amp_source_unavailable message_id=%s reason=%s", message_id,
                        exc)
            body = {"items": []}
        resp = _amp_cors(jsonify(body), sender)
    if resp is None:
        return jsonify({"error": "sender not allowed"}), 403
    resp.headers["Cache-Control"] = "private, no-store"
    return resp
