"""The sandbox's own side: the mailbox pages that show what recipients would receive, and
the control API tests use (deliver mail, queue faults, change latency, revoke grants).

Both answer loopback clients only: they show and change every mailbox.
"""
from __future__ import annotations

import email
import email.parser
import email.policy
import ipaddress
import time

from flask import Blueprint, abort, jsonify, render_template, request

from sandbox.state import Fault, StoredMessage, b64url, state, summary

bp = Blueprint("control", __name__)


@bp.before_request
def _loopback_only():
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        abort(403)


@bp.get("/favicon.ico")
def favicon():
    return "", 204  # browsers ask on every page; nothing to show


@bp.get("/sandbox/")
def mailbox():
    st = state()
    with st.lock:
        messages = sorted(st.messages.values(), key=lambda m: -m.internal_date)
    return render_template("mailbox.html", messages=[summary(m) for m in messages])


@bp.get("/sandbox/messages/<msg_id>")
def show_message(msg_id):
    st = state()
    with st.lock:
        stored = st.messages.get(msg_id)
    if stored is None:
        abort(404)
    parsed = stored.parsed
    parts = {p.get_content_type(): p.get_content() for p in parsed.walk()
             if not p.is_multipart()}
    return render_template("message.html", m=summary(stored), headers=parsed.items(),
                           parts=parts)


@bp.get("/sandbox/api/count")
def api_count():
    """How many messages the sandbox Gmail has accepted."""
    st = state()
    with st.lock:
        return jsonify({"count": sum("SENT" in m.label_ids
                                     for m in st.messages.values())})


@bp.get("/sandbox/api/messages")
def api_messages():
    """Every message sent through the sandbox (not mail delivered to it), for tests."""
    st = state()
    with st.lock:
        messages = sorted((m for m in st.messages.values() if "SENT" in m.label_ids),
                          key=lambda m: m.internal_date)
    return jsonify({"messages": [{**summary(m), "raw": b64url(m.raw)} for m in messages]})


@bp.post("/sandbox/api/deliver")
def deliver():
    """Mail arriving in a mailbox: {"owner", "raw"} (MIME text). A reply or a bounce
    joins the thread of the message it names (In-Reply-To, References), as in Gmail."""
    st = state()
    body = request.get_json(silent=True) or {}
    owner = str(body.get("owner", "")).lower()
    raw = str(body.get("raw", "")).encode()
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    wanted = " ".join(str(headers.get(h, "")) for h in ("In-Reply-To", "References"))
    with st.lock:
        thread = next((m.thread_id for m in st.mailbox(owner)
                       if m.headers.get("Message-ID") and m.headers["Message-ID"] in wanted),
                      None)
        msg_id = st.next_id()
        st.messages[msg_id] = StoredMessage(
            id=msg_id, thread_id=thread or msg_id, label_ids=["INBOX", "UNREAD"],
            raw=raw, internal_date=int(time.time() * 1000),
            history_id=st.next_history(), owner=owner)
    return jsonify({"id": msg_id, "threadId": thread or msg_id})


@bp.post("/sandbox/api/drafts")
def add_draft():
    """Put a draft in a mailbox, as its owner would in Gmail: {"owner", "raw"} (MIME)."""
    st = state()
    body = request.get_json(silent=True) or {}
    with st.lock:
        msg_id, draft_id = st.next_id(), "r" + str(st.next_history())
        st.drafts[draft_id] = StoredMessage(
            id=msg_id, thread_id=msg_id, label_ids=["DRAFT"],
            raw=str(body.get("raw", "")).encode(), internal_date=int(time.time() * 1000),
            history_id=st.next_history(), owner=str(body.get("owner", "")).lower())
    return jsonify({"id": draft_id})


@bp.post("/sandbox/api/faults")
def add_faults():
    """Queue faults: a JSON list of Fault fields (method, status, times, ...)."""
    st = state()
    items = request.get_json(force=True)
    items = items if isinstance(items, list) else [items]
    try:
        faults = [Fault(**item) for item in items]
    except TypeError as exc:
        return jsonify({"error": str(exc)}), 400
    with st.lock:
        st.faults.extend(faults)
    return jsonify({"queued": len(faults)})


@bp.delete("/sandbox/api/faults")
def clear_faults():
    st = state()
    with st.lock:
        st.faults.clear()
    return jsonify({})


@bp.post("/sandbox/api/settings")
def change_settings():
    """Set send_latency (seconds) or access_token_seconds."""
    st = state()
    body = request.get_json(force=True) or {}
    with st.lock:
        if "send_latency" in body:
            st.send_latency = float(body["send_latency"])
        if "access_token_seconds" in body:
            st.access_token_seconds = int(body["access_token_seconds"])
        if body.get("expire_history"):
            st.history_floor = st.next_history()
    return jsonify({"send_latency": st.send_latency,
                    "access_token_seconds": st.access_token_seconds,
                    "history_floor": st.history_floor})


@bp.post("/sandbox/api/send-as")
def add_send_as():
    """Add a "Send mail as" alias: {"owner", "email", "name", "verified" (true)}."""
    st = state()
    body = request.get_json(force=True) or {}
    owner = str(body.get("owner", "")).lower()
    with st.lock:
        st.send_as.setdefault(owner, []).append({
            "sendAsEmail": str(body.get("email", "")).lower(),
            "displayName": str(body.get("name", "")),
            "verificationStatus": "accepted" if body.get("verified", True) else "pending"})
    return jsonify({"aliases": len(st.send_as[owner])})


@bp.post("/sandbox/api/revoke")
def revoke_all():
    """Revoke every grant of an address, as a user would in their Google account."""
    st = state()
    email_addr = (request.get_json(force=True) or {}).get("email", "").lower()
    with st.lock:
        hit = [g for g in st.grants.values() if g.email == email_addr]
        for grant in hit:
            grant.revoked = True
    return jsonify({"revoked": len(hit)})
