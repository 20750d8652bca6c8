"""The links inside sent mail: open pixel, live images, click redirect, unsubscribe, AMP
live data.

No login and no CSRF token here (mail clients call these): each link is authenticated by
its signed token instead, and a tampered or foreign token is a plain 404 (a live image's
is the neutral "expired" image: image proxies keep errors).
"""
from __future__ import annotations

import datetime as dt
import logging
from email.utils import parseaddr
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request
from sqlalchemy import select

from app import csrf, ctx
from scheduler.audience.suppression import subscription_of
from scheduler.content import live_images
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
    _record_open(message_id, "pixel")
    resp = Response(tracking.PIXEL_GIF, mimetype="image/gif")
    resp.headers["Cache-Control"] = "no-store, max-age=0"
    return resp


def _record_open(message_id: str, image: str) -> None:
    with ctx().db.write() as s:
        tracking.record_open(s, message_id, request.headers.get("User-Agent", ""), utcnow(),
                             method=request.method, image=image)


def _image(body: bytes) -> Response:
    """An image drawn for this fetch: Gmail's image proxy must fetch it again next time
    (no-cache, no validators that would let it reuse this second's image)."""
    kind = "image/gif" if body[:3] == b"GIF" else "image/png"
    resp = Response(body, mimetype=kind)
    resp.headers["Cache-Control"] = "no-cache, max-age=0"
    resp.headers["Pragma"] = "no-cache"
    resp.headers["Expires"] = "0"
    return resp


@bp.get("/li/<token>.<ext>")
def live_image(token, ext):
    """A message's live image as of now, counted as an open like the pixel. Anything not
    ours (tampered, another deployment's, a deleted message) gets the neutral "expired"
    image: an error would be cached by Gmail's image proxy."""
    c = ctx()
    value = _links().read("live_image", token)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict)
            and ext in ("gif", "png")):
        return _image(live_images.neutral_image(c.images))
    message_id, spec = value
    text = spec.get("k") == "text"
    # What drawing needs, not the row (a text card's source also needs its data).
    columns = [Message.sent_at, Message.tracking, Message.transactional] + (
        [Message.sources, Message.data] if text else [])
    with c.db.core_read() as conn:
        message = conn.execute(select(*columns).where(Message.id == message_id)).first()
    if message is None:
        return _image(live_images.neutral_image(c.images))
    sent_at = message.sent_at
    sources = [x for x in message.sources or () if x["name"] == spec.get("source")] \
        if text else []
    data = dict(message.data or {}) if text else {}
    if message.tracking and not message.transactional:
        _record_open(message_id, spec.get("k", "live image"))
    return _image(_draw(spec, sent_at, data, sources, utcnow()))


@bp.get("/li/preview/<token>.<ext>")
def live_image_preview(token, ext):
    """A live image for the template editor's preview, as of now or `?at=` (nothing is
    counted; sources are fetched with the template's data)."""
    c = ctx()
    found = _links().read_preview(token)
    if found is None or ext not in ("gif", "png"):
        return _image(live_images.neutral_image(c.images))
    spec, made = found
    now = live_images.as_of(request.args.get("at")) or utcnow()
    # "Hours after sending" counts from when the preview was made, as if sent then.
    return _image(_draw(spec, made, spec.get("data") or {}, spec.get("sources") or [], now))


def _draw(spec: dict, sent_at, data: dict, sources: list, now: dt.datetime) -> bytes:
    c = ctx()
    try:
        if spec.get("k") == "countdown":
            return live_images.countdown_image(spec, sent_at, now, c.images)
        value = None
        if sources:
            try:
                value = c.content.fetch(sources, data)[0][sources[0]["name"]]
            except content.ContentUnavailable as exc:
                log.warning("action=live_image_source_unavailable source=%s reason=%s",
                            sources[0]["name"], exc)
        return live_images.text_image(spec, value, c.images)
    except (KeyError, TypeError, ValueError) as exc:  # a spec this version cannot draw
        log.warning("action=live_image_undrawable reason=%s", exc)
        return live_images.neutral_image(c.images)


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
                           already=state is not None and state[0] != "subscribed",
                           **_sender(message.from_addr))


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
        sender = _sender(message.from_addr)
    if one_click:
        return "", 200
    return render_template("ui/unsubscribe.html", address=address, done=True, already=False,
                           **sender)


def _sender(from_addr: str | None) -> dict:
    """Who the recipient knows the mail from: the From display name, else its address."""
    name, address = parseaddr(from_addr or "")
    return {"sender_name": name or address or "the sender", "sender_address": address}


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
