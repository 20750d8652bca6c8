"""The sandbox's own side: the mailbox pages that show what recipients would receive, and
the control API tests use (deliver mail, queue faults, change latency, revoke grants).

Both answer loopback clients only: they show and change every mailbox.
"""
from __future__ import annotations

import email
import email.parser
import email.policy
import time

from flask import Blueprint, abort, jsonify, render_template, request

from sandbox import pubsub
from sandbox.state import Fault, StoredMessage, b64url, loopback_only, state, summary

bp = Blueprint("control", __name__)


bp.before_request(loopback_only)


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
        stored = st.messages[msg_id] = StoredMessage(
            id=msg_id, thread_id=thread or msg_id, label_ids=["INBOX", "UNREAD"],
            raw=raw, internal_date=int(time.time() * 1000),
            history_id=st.next_history(), owner=owner)
        pubsub.mailbox_changed(owner, stored.label_ids, stored.history_id)
    return jsonify({"id": msg_id, "threadId": thread or msg_id})


@bp.post("/sandbox/api/pubsub/subscriptions")
def add_subscription():
    """A subscription: {"name": "projects/P/subscriptions/S", "topic": "projects/P/topics/T",
    "ack_deadline": seconds}, and for push {"push": {"endpoint", "audience",
    "service_account"}}; the topic exists from then on."""
    body = request.get_json(silent=True) or {}
    pubsub.add_subscription(str(body.get("name", "")), str(body.get("topic", "")),
                            int(body.get("ack_deadline") or 10), body.get("push"))
    return jsonify({"name": body.get("name")})


@bp.post("/sandbox/api/pubsub/deny")
def deny_topic():
    """Gmail's service account lacks the publisher grant on {"topic"}: watch() is a 403."""
    st = state()
    with st.lock:
        st.pubsub_denied_topics.add(str((request.get_json(silent=True) or {}).get("topic")))
    return jsonify({})


@bp.post("/sandbox/api/pubsub/faults")
def pubsub_faults():
    """Lose (`drop`), duplicate (`duplicate`) the next n notifications, or publish each
    `delay` seconds late."""
    body = request.get_json(silent=True) or {}
    ps = state().pubsub
    with ps.arrived:
        ps.drop = int(body.get("drop", ps.drop))
        ps.duplicate = int(body.get("duplicate", ps.duplicate))
        ps.delay = float(body.get("delay", ps.delay))
    return jsonify({"drop": ps.drop, "duplicate": ps.duplicate, "delay": ps.delay})


@bp.get("/sandbox/api/pubsub")
def pubsub_state():
    """Watches, how many notifications were published, and each subscription's backlog."""
    st = state()
    ps = st.pubsub
    with st.lock:
        watches = {k: dict(v) for k, v in ps.watches.items()}
    with ps.arrived:
        subs = {name: {"topic": s.topic, "waiting": len(s.waiting), "out": len(s.out)}
                for name, s in ps.subscriptions.items()}
        return jsonify({"watches": watches, "published": ps.published,
                        "subscriptions": subs})


@bp.post("/sandbox/api/service-accounts")
def add_service_account():
    """A service account whose signed JWTs the token endpoint accepts: {"email",
    "public_key_pem"}."""
    body = request.get_json(silent=True) or {}
    st = state()
    with st.lock:
        st.service_accounts[str(body.get("email", ""))] = str(body.get("public_key_pem", ""))
    return jsonify({"email": body.get("email")})


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
