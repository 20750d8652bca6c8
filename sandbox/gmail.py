"""The Gmail API (v1) as the sandbox plays it: profile, messages (send, list, get),
threads, history, sendAs aliases and drafts, each with Google's scopes and errors."""
from __future__ import annotations

import binascii
import email
import email.parser
import email.policy
import secrets
import time
from email.utils import getaddresses, parseaddr

from flask import Blueprint, jsonify, request

from sandbox.state import (
    GMAIL_COMPOSE_SCOPES,
    GMAIL_PROFILE_SCOPES,
    GMAIL_READ_SCOPES,
    GMAIL_SEND_SCOPES,
    GMAIL_SETTINGS_SCOPES,
    STORED_HEADERS,
    StoredMessage,
    google_error,
    matches,
    message_resource,
    normal_subject,
    play_fault,
    state,
    unb64url,
)

bp = Blueprint("gmail", __name__)


def _caller(user_id: str, needs: set[str]):
    """(email, None) for a valid Bearer token with one of `needs`, else (None, error)."""
    st = state()
    header = request.headers.get("Authorization", "")
    token_info = None
    if header.startswith("Bearer "):
        with st.lock:
            token_info = st.access_tokens.get(header[7:])
            if token_info is not None:
                grant = st.grants.get(token_info["refresh_token"])
                if grant is None or grant.revoked or token_info["expires"] < time.time():
                    token_info = None
    if token_info is None:
        return None, google_error(
            401, "Request had invalid authentication credentials. Expected OAuth 2 "
                 "access token, login cookie or other valid authentication credential.",
            "authError", "UNAUTHENTICATED", {"WWW-Authenticate": 'Bearer realm="sandbox"'})
    if user_id not in ("me", token_info["email"]):
        return None, google_error(403, "Delegation denied for " + token_info["email"],
                                  "forbidden", "PERMISSION_DENIED")
    if not needs & set(token_info["scopes"]):
        return None, google_error(403, "Request had insufficient authentication scopes.",
                                  "insufficientPermissions", "PERMISSION_DENIED")
    return token_info["email"], None


@bp.get("/gmail/v1/users/<user_id>/profile")
def profile(user_id):
    # As at Google: gmail.send alone may not read the profile.
    st = state()
    owner, err = _caller(user_id, GMAIL_PROFILE_SCOPES)
    if err:
        return err
    with st.lock:
        box = st.mailbox(owner)
        return jsonify({"emailAddress": owner, "messagesTotal": len(box),
                        "threadsTotal": len({m.thread_id for m in box}),
                        "historyId": str(st.next_history())})


@bp.post("/gmail/v1/users/<user_id>/messages/send")
def send(user_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_SEND_SCOPES)
    if err:
        return err
    fault = st.take_fault("send", owner)
    if fault is not None and not fault.after_store:
        return play_fault(fault)
    if st.send_latency:
        time.sleep(st.send_latency)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body.get("raw"):
        return google_error(400, "'raw' RFC822 payload message string or uploading "
                                 "message via /upload/* URL required",
                            "invalidArgument", "INVALID_ARGUMENT")
    try:
        raw = unb64url(body["raw"])
    except (binascii.Error, ValueError):
        return google_error(400, "Invalid value for ByteString: raw", "invalidArgument",
                            "INVALID_ARGUMENT")
    parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    recipients = [a for _, a in getaddresses(
        [str(v) for k in ("To", "Cc", "Bcc") for v in parsed.get_all(k, [])]) if a]
    if not recipients:
        return google_error(400, "Recipient address required", "invalidArgument",
                            "INVALID_ARGUMENT")
    if any("@" not in a or " " in a for a in recipients):
        return google_error(400, "Invalid To header", "invalidArgument",
                            "INVALID_ARGUMENT")
    with st.lock:
        thread_id = body.get("threadId")
        if thread_id:
            thread = [m for m in st.mailbox(owner) if m.thread_id == thread_id]
            if not thread:
                return google_error(404, "Requested entity was not found.", "notFound",
                                    "NOT_FOUND")
            if normal_subject(thread[0].parsed["Subject"]) != normal_subject(
                    parsed["Subject"]):
                thread_id = None  # Gmail starts a new thread when subjects differ
        stamped = _stamp(raw, parsed, owner)
        headers = ({name: str(parsed.get(name, "")) for name in STORED_HEADERS}
                   if stamped is raw else {})
        msg_id = st.next_id()
        stored = StoredMessage(id=msg_id, thread_id=thread_id or msg_id,
                               label_ids=["SENT"], raw=stamped,
                               internal_date=int(time.time() * 1000),
                               history_id=st.next_history(), owner=owner,
                               headers=headers)
        st.messages[msg_id] = stored
    if fault is not None:
        return play_fault(fault)
    return jsonify({"id": stored.id, "threadId": stored.thread_id,
                    "labelIds": stored.label_ids})


def _stamp(raw: bytes, headers, owner: str) -> bytes:
    """What Gmail does on send: From is the account or one of its verified aliases
    (anything else becomes the account), a Message-ID if none was given."""
    st = state()
    name, addr = parseaddr(str(headers.get("From", "")))
    with st.lock:
        allowed = {owner} | {a["sendAsEmail"].lower() for a in st.send_as.get(owner, ())
                             if a.get("verificationStatus") == "accepted"}
    if addr.lower() in allowed and headers.get("Message-ID"):
        return raw  # nothing to change: keep the sender's bytes as they are
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    if addr.lower() not in allowed:
        del parsed["From"]
        parsed["From"] = f"{name} <{owner}>" if name else owner
    if not parsed.get("Message-ID"):
        parsed["Message-ID"] = f"<sandbox.{secrets.token_hex(8)}@mail.gmail.com>"
    return parsed.as_bytes()


@bp.get("/gmail/v1/users/<user_id>/messages")
def list_messages(user_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_READ_SCOPES)
    if err:
        return err
    fault = st.take_fault("list", owner)
    if fault is not None:
        return play_fault(fault)
    query = request.args.get("q", "")
    max_results = min(int(request.args.get("maxResults", 100)), 500)
    start = int(request.args.get("pageToken") or 0)
    with st.lock:
        found = [m for m in sorted(st.mailbox(owner), key=lambda m: -m.internal_date)
                 if matches(m, query)]
    page = found[start:start + max_results]
    body = {"messages": [{"id": m.id, "threadId": m.thread_id} for m in page],
            "resultSizeEstimate": len(found)}
    if not page:
        del body["messages"]
    if start + max_results < len(found):
        body["nextPageToken"] = str(start + max_results)
    return jsonify(body)


@bp.get("/gmail/v1/users/<user_id>/messages/<msg_id>")
def get_message(user_id, msg_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_READ_SCOPES)
    if err:
        return err
    with st.lock:
        stored = st.messages.get(msg_id)
    if stored is None or stored.owner != owner:
        return google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
    return jsonify(message_resource(stored, request.args.get("format", "full"),
                                    request.args.getlist("metadataHeaders")))


@bp.get("/gmail/v1/users/<user_id>/threads/<thread_id>")
def get_thread(user_id, thread_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_READ_SCOPES)
    if err:
        return err
    with st.lock:
        thread = sorted((m for m in st.mailbox(owner) if m.thread_id == thread_id),
                        key=lambda m: m.internal_date)
    if not thread:
        return google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
    fmt = request.args.get("format", "full")
    wanted = request.args.getlist("metadataHeaders")
    return jsonify({"id": thread_id, "historyId": str(thread[-1].history_id),
                    "messages": [message_resource(m, fmt, wanted) for m in thread]})


@bp.get("/gmail/v1/users/<user_id>/threads")
def list_threads(user_id):
    """threads.list: newest activity first, with the q search of messages.list."""
    st = state()
    owner, err = _caller(user_id, GMAIL_READ_SCOPES)
    if err:
        return err
    query = request.args.get("q", "")
    max_results = min(int(request.args.get("maxResults", 100)), 500)
    start = int(request.args.get("pageToken") or 0)
    latest: dict[str, StoredMessage] = {}
    with st.lock:
        for m in st.mailbox(owner):
            if matches(m, query) and (m.thread_id not in latest or
                                       m.internal_date >= latest[m.thread_id].internal_date):
                latest[m.thread_id] = m
    found = sorted(latest.values(), key=lambda m: (-m.internal_date, m.id))
    page = found[start:start + max_results]
    body = {"threads": [{"id": m.thread_id, "snippet": m.headers["Subject"][:100],
                         "historyId": str(m.history_id)} for m in page],
            "resultSizeEstimate": len(found)}
    if not page:
        del body["threads"]
    if start + max_results < len(found):
        body["nextPageToken"] = str(start + max_results)
    return jsonify(body)


@bp.get("/gmail/v1/users/<user_id>/settings/sendAs")
def list_send_as(user_id):
    """settings.sendAs.list: the primary address and the aliases."""
    st = state()
    owner, err = _caller(user_id, GMAIL_READ_SCOPES | GMAIL_SETTINGS_SCOPES)
    if err:
        return err
    with st.lock:
        aliases = [dict(a, isPrimary=False, isDefault=False)
                   for a in st.send_as.get(owner, ())]
    return jsonify({"sendAs": [{"sendAsEmail": owner, "displayName": "",
                                "isPrimary": True, "isDefault": True,
                                "verificationStatus": "accepted"}] + aliases})


# drafts.list/get need read or compose access, drafts.create compose, as at Google.
@bp.post("/gmail/v1/users/<user_id>/drafts")
def create_draft(user_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_COMPOSE_SCOPES)
    if err:
        return err
    body = request.get_json(silent=True) or {}
    try:
        raw = unb64url((body.get("message") or {}).get("raw") or "")
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        return google_error(400, "Invalid draft: message.raw is required",
                            "invalidArgument", "INVALID_ARGUMENT")
    with st.lock:
        msg_id, draft_id = st.next_id(), "r" + str(st.next_history())
        stored = StoredMessage(id=msg_id, thread_id=msg_id, label_ids=["DRAFT"], raw=raw,
                               internal_date=int(time.time() * 1000),
                               history_id=st.next_history(), owner=owner)
        st.drafts[draft_id] = stored
    return jsonify({"id": draft_id, "message": {"id": msg_id, "threadId": msg_id,
                                                 "labelIds": ["DRAFT"]}})


@bp.get("/gmail/v1/users/<user_id>/drafts")
def list_drafts(user_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_PROFILE_SCOPES)
    if err:
        return err
    max_results = min(int(request.args.get("maxResults", 100)), 500)
    with st.lock:
        mine = sorted(((d, m) for d, m in st.drafts.items() if m.owner == owner),
                      key=lambda dm: -dm[1].internal_date)[:max_results]
    if not mine:
        return jsonify({"resultSizeEstimate": 0})
    return jsonify({"drafts": [{"id": d, "message": {"id": m.id, "threadId": m.thread_id}}
                               for d, m in mine], "resultSizeEstimate": len(mine)})


@bp.get("/gmail/v1/users/<user_id>/drafts/<draft_id>")
def get_draft(user_id, draft_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_PROFILE_SCOPES)
    if err:
        return err
    with st.lock:
        stored = st.drafts.get(draft_id)
    if stored is None or stored.owner != owner:
        return google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
    return jsonify({"id": draft_id, "message": message_resource(
        stored, request.args.get("format", "full"))})


@bp.get("/gmail/v1/users/<user_id>/history")
def history(user_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_READ_SCOPES)
    if err:
        return err
    try:
        start = int(request.args.get("startHistoryId", ""))
    except ValueError:
        return google_error(400, "Invalid startHistoryId", "invalidArgument",
                            "INVALID_ARGUMENT")
    with st.lock:
        if start < st.history_floor:
            return google_error(404, "Requested entity was not found.", "notFound",
                                "NOT_FOUND")
        added = sorted((m for m in st.mailbox(owner) if m.history_id > start),
                       key=lambda m: m.history_id)
        latest = str(st.next_history())
    body = {"historyId": latest}
    if added:
        body["history"] = [{"id": str(m.history_id), "messagesAdded": [{"message": {
            "id": m.id, "threadId": m.thread_id, "labelIds": m.label_ids}}]}
            for m in added]
    return jsonify(body)
