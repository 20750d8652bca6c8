"""The Gmail API (v1) as the sandbox plays it: profile, messages (send, list, get),
threads, history, sendAs aliases and drafts, each with Google's scopes and errors."""
from __future__ import annotations

import binascii
import email
import email.parser
import email.policy
import json
import re
import secrets
import time
from email.utils import getaddresses, parseaddr

from flask import Blueprint, jsonify, request

from sandbox import pubsub
from sandbox.state import (
    ADDON_MESSAGE_SCOPES,
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


# Gmail's documented limit for messages.send through the /upload URI.
MAX_UPLOAD_BYTES = 35 * 1024 * 1024


@bp.post("/gmail/v1/users/<user_id>/messages/send")
def send(user_id):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body.get("raw"):
        return _refused(user_id) or google_error(
            400, "'raw' RFC822 payload message string or uploading message via /upload/* "
                 "URL required", "invalidArgument", "INVALID_ARGUMENT")
    try:
        raw = unb64url(body["raw"])
    except (binascii.Error, ValueError):
        return _refused(user_id) or google_error(
            400, "Invalid value for ByteString: raw", "invalidArgument", "INVALID_ARGUMENT")
    return _send(user_id, raw, body.get("threadId"), "raw")


@bp.post("/upload/gmail/v1/users/<user_id>/messages/send")
def upload_send(user_id):
    """messages.send through the upload URI: uploadType media (the message is the body),
    multipart (multipart/related: the JSON metadata, then the message) or resumable (this
    request begins a session; the PUT to its Location sends)."""
    kind = request.args.get("uploadType", "")
    if kind == "resumable":
        return _begin_resumable(user_id)
    if request.content_length and request.content_length > MAX_UPLOAD_BYTES + 65536:
        return _too_large()
    if kind == "media":
        return _send_upload(user_id, {}, request.get_data(), "media")
    if kind == "multipart":
        found = _multipart_related(request.headers.get("Content-Type", ""),
                                   request.get_data())
        if found is None:
            return google_error(400, "Invalid multipart request", "badContent",
                                "INVALID_ARGUMENT")
        return _send_upload(user_id, *found, "multipart")
    return google_error(400, f"Invalid upload type: {kind!r}", "invalidArgument",
                        "INVALID_ARGUMENT")


@bp.put("/upload/gmail/v1/users/<user_id>/messages/send")
def resumable_put(user_id):
    """The content of a resumable upload, in one request; sends the message."""
    st = state()
    upload_id = request.args.get("upload_id", "")
    with st.lock:
        begun = st.uploads.get(upload_id)
    if begun is None:
        return google_error(404, "No such upload session", "notFound", "NOT_FOUND")
    owner, metadata, length = begun
    content = request.get_data()
    if length is not None and len(content) != length:
        return google_error(400, f"expected {length} bytes, got {len(content)}",
                            "badContent", "INVALID_ARGUMENT")
    answer = _send_upload(user_id, metadata, content, "resumable")
    if answer.status_code < 300:
        with st.lock:
            st.uploads.pop(upload_id, None)
    return answer


def _begin_resumable(user_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_SEND_SCOPES)
    if err:
        return err
    length = request.headers.get("X-Upload-Content-Length")
    if length is not None and (not length.isdigit() or int(length) > MAX_UPLOAD_BYTES):
        return _too_large()
    metadata = request.get_json(silent=True) if request.content_length else {}
    upload_id = secrets.token_urlsafe(16)
    with st.lock:
        st.uploads[upload_id] = (owner, metadata if isinstance(metadata, dict) else {},
                                 int(length) if length is not None else None)
    answer = jsonify({})
    answer.headers["Location"] = (request.base_url + "?uploadType=resumable&upload_id="
                                  + upload_id)
    return answer


def _too_large():
    return google_error(413, f"Request Entity Too Large: the message is above the "
                             f"{MAX_UPLOAD_BYTES} byte limit", "uploadTooLarge",
                        "INVALID_ARGUMENT")


def _multipart_related(content_type: str, data: bytes):
    """(metadata, message) from a multipart/related upload body, or None.

    Split by hand: the email parser would parse the message/rfc822 part as a message of
    its own, and a message's bytes must come out exactly as they went in."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/related") or match is None:
        return None
    chunks = data.split(b"--" + match.group(1).encode("latin-1"))
    parts = []
    for chunk in chunks[1:-1]:
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:]
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep or b"\n\n" in head:
            head, sep, content = chunk.partition(b"\n\n")
        # The line break before the next delimiter belongs to the delimiter.
        content = content[:-2] if content.endswith(b"\r\n") else content[:-1]
        parts.append(content)
    if len(parts) != 2:
        return None
    try:
        metadata = json.loads(parts[0] or b"{}")
    except ValueError:
        return None
    if not isinstance(metadata, dict) or not parts[1]:
        return None
    return metadata, parts[1]


def _send_upload(user_id, metadata: dict, raw: bytes, via: str):
    if len(raw) > MAX_UPLOAD_BYTES:
        return _too_large()
    if not raw:
        return google_error(400, "the uploaded message is empty", "invalidArgument",
                            "INVALID_ARGUMENT")
    return _send(user_id, raw, metadata.get("threadId"), via)


def _refused(user_id):
    """The caller's error (auth, scope) before the body's, as Google answers."""
    return _caller(user_id, GMAIL_SEND_SCOPES)[1]


def _send(user_id, raw: bytes, thread_id: str | None, via: str):
    """Deliver one message: faults, recipients, the thread, Gmail's stamping."""
    st = state()
    owner, err = _caller(user_id, GMAIL_SEND_SCOPES)
    if err:
        return err
    fault = st.take_fault("send", owner)
    if fault is not None and not fault.after_store:
        return play_fault(fault)
    if st.send_latency:
        time.sleep(st.send_latency)
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
                               headers=headers, via=via)
        st.messages[msg_id] = stored
        pubsub.mailbox_changed(owner, stored.label_ids, stored.history_id)
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


def _addon_may_read(msg_id: str, owner: str) -> bool:
    """Whether an add-on token's call carries Gmail's token for this open message."""
    st = state()
    header = request.headers.get("Authorization", "")[7:]
    with st.lock:
        scopes = set((st.access_tokens.get(header) or {}).get("scopes") or ())
        if scopes & GMAIL_READ_SCOPES:
            return True
        given = st.addon_message_tokens.get(request.headers.get("X-Goog-Gmail-Access-Token",
                                                                ""))
    return bool(given and given["owner"] == owner and given["message_id"] == msg_id
                and given["expires"] > time.time())


@bp.get("/gmail/v1/users/<user_id>/messages/<msg_id>")
def get_message(user_id, msg_id):
    st = state()
    owner, err = _caller(user_id, GMAIL_READ_SCOPES | ADDON_MESSAGE_SCOPES)
    if err:
        return err
    if not _addon_may_read(msg_id, owner):
        return google_error(403, "Request had insufficient authentication scopes: an "
                                 "add-on reads the open message with its "
                                 "X-Goog-Gmail-Access-Token.", "insufficientPermissions",
                            "PERMISSION_DENIED")
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
    fault = st.take_fault("threads.get", owner)
    if fault is not None:
        return play_fault(fault)
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
