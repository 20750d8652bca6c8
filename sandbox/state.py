"""The sandbox's state (grants, tokens, mailboxes, queued faults) and the shapes of
Google's answers: error bodies, message resources.

One `SandboxState` per sandbox app, guarded by its lock; the blueprints reach it with
`state()`.
"""
from __future__ import annotations

import base64
import email
import email.parser
import email.policy
import ipaddress
import itertools
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

from flask import Response, abort, current_app, jsonify, request

GMAIL_SEND_SCOPES = {"https://www.googleapis.com/auth/gmail.send",
                     "https://www.googleapis.com/auth/gmail.compose",
                     "https://www.googleapis.com/auth/gmail.modify", "https://mail.google.com/"}


GMAIL_READ_SCOPES = {"https://www.googleapis.com/auth/gmail.readonly",
                     "https://www.googleapis.com/auth/gmail.modify", "https://mail.google.com/"}


GMAIL_COMPOSE_SCOPES = {"https://www.googleapis.com/auth/gmail.compose",
                        "https://www.googleapis.com/auth/gmail.modify",
                        "https://mail.google.com/"}


GMAIL_SETTINGS_SCOPES = {"https://www.googleapis.com/auth/gmail.settings.basic"}


# A Gmail add-on's token reads only the open message, with Gmail's per-message token.
ADDON_MESSAGE_SCOPES = {"https://www.googleapis.com/auth/gmail.addons.current.message.readonly",
                        "https://www.googleapis.com/auth/gmail.addons.current.message.metadata"}
ADDON_SCOPES = sorted(ADDON_MESSAGE_SCOPES | {
    "https://www.googleapis.com/auth/gmail.addons.execute",
    "https://www.googleapis.com/auth/gmail.addons.current.action.compose",
    "https://www.googleapis.com/auth/userinfo.email"})


GMAIL_PROFILE_SCOPES = GMAIL_READ_SCOPES | {"https://www.googleapis.com/auth/gmail.compose",
                                            "https://www.googleapis.com/auth/gmail.metadata"}


@dataclass
class Grant:
    """One user's consent to one client, with its refresh token."""

    email: str
    client_id: str
    scopes: list[str]
    refresh_token: str
    revoked: bool = False


STORED_HEADERS = ("From", "To", "Subject", "Message-ID")


@dataclass
class StoredMessage:
    """A message in a sandbox mailbox."""

    id: str
    thread_id: str
    label_ids: list[str]
    raw: bytes
    internal_date: int
    history_id: int
    owner: str

    headers: dict = field(default_factory=dict)
    # How it came: "raw" (the JSON field) or the upload type (media, multipart, resumable).
    via: str = "raw"

    def __post_init__(self):
        # Headers parsed once (and only headers): listing or searching thousands of
        # messages must not re-parse every body.
        if not self.headers:
            parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
                self.raw)
            self.headers = {name: str(parsed.get(name, "")) for name in STORED_HEADERS}

    @property
    def parsed(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


@dataclass
class Fault:
    """A failure the sandbox plays on the next `times` calls of `method` (-1: forever).

    `after_store` accepts the message before failing: the ambiguous outcome of a send whose
    answer was lost. `reset` closes the connection instead of answering; `delay` sleeps first
    (longer than the client's timeout, it is a timeout).
    """

    method: str
    status: int = 503
    message: str = "The service is currently unavailable."
    reason: str = "backendError"
    retry_after: str | None = None
    times: int = 1
    delay: float = 0.0
    after_store: bool = False
    reset: bool = False
    email: str | None = None


@dataclass
class Subscription:
    """A subscription: pull (messages not yet delivered, and those out with an ack id),
    or push (`push_endpoint`: each message is posted there with an OIDC token)."""

    topic: str
    ack_deadline: int = 10
    push_endpoint: str | None = None
    push_audience: str | None = None
    push_service_account: str | None = None
    waiting: list[dict] = field(default_factory=list)
    out: dict[str, tuple[dict, float]] = field(default_factory=dict)  # ack id → (msg, due)
    delivered: int = 0


@dataclass
class Notifications:
    """Everything the sandbox knows of Pub/Sub, guarded by the sandbox state's lock."""

    watches: dict[str, dict] = field(default_factory=dict)  # mailbox → {topic, labels}
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    published: int = 0
    drop: int = 0  # the next n notifications are lost
    duplicate: int = 0  # the next n are published twice
    delay: float = 0.0  # seconds before a notification is published
    arrived: threading.Condition = field(default_factory=threading.Condition)


@dataclass
class SandboxState:
    """Everything the sandbox knows; guarded by `lock`."""

    clients: dict[str, dict] = field(default_factory=dict)
    codes: dict[str, dict] = field(default_factory=dict)
    access_tokens: dict[str, dict] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    drafts: dict[str, StoredMessage] = field(default_factory=dict)  # draft id → message
    access_token_seconds: int = 3600
    send_latency: float = 0.0
    # history.list answers 404 for a start older than this (Gmail keeps about a week).
    history_floor: int = 0
    faults: list[Fault] = field(default_factory=list)
    # Gmail's "Send mail as" aliases per mailbox: [{"sendAsEmail", "displayName",
    # "verificationStatus"}] besides the primary address.
    send_as: dict[str, list[dict]] = field(default_factory=dict)
    # Pub/Sub (sandbox/pubsub.py): watches, subscriptions, and the topics Gmail may
    # publish to (a topic in pubsub_denied_topics lacks the publisher grant).
    pubsub: Notifications = field(default_factory=Notifications)
    pubsub_topics: set[str] = field(default_factory=set)
    pubsub_denied_topics: set[str] = field(default_factory=set)
    # Service accounts whose JWTs the token endpoint accepts: email → public key (PEM).
    service_accounts: dict[str, str] = field(default_factory=dict)
    # Resumable uploads begun and not finished: upload id → (owner, metadata, length).
    uploads: dict[str, tuple[str, dict, int | None]] = field(default_factory=dict)
    # The Gmail add-on host (sandbox/addon.py): Gmail's per-message tokens (token →
    # {owner, message_id, expires}), the add-on's service account, and the host pages'
    # card stacks (session id → {owner, app, stack, notice, draft}).
    addon_message_tokens: dict[str, dict] = field(default_factory=dict)
    addon_service_account: str = "gmail-addon@sandbox-project.iam.gserviceaccount.com"
    addon_sessions: dict[str, dict] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(0x18c0000000000))
    _history: itertools.count = field(default_factory=lambda: itertools.count(1000))

    def next_id(self) -> str:
        # Unique (the counter moves in strides larger than the random part), Gmail-like hex.
        return format(next(self._ids) * 0x1000 + secrets.randbelow(0x1000), "x")

    def next_history(self) -> int:
        return next(self._history)

    def mailbox(self, owner: str) -> list[StoredMessage]:
        return [m for m in self.messages.values() if m.owner == owner]

    def take_fault(self, method: str, email: str | None = None) -> Fault | None:
        """The next fault for this call, counting it down."""
        with self.lock:
            for fault in self.faults:
                if fault.method in (method, "*") and fault.email in (None, email):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self.faults.remove(fault)
                    return fault
        return None


def google_error(code: int, message: str, reason: str, status: str,
                 headers: dict | None = None) -> Response:
    """An error body shaped like Google's JSON APIs answer."""
    body = {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason}],
                      "status": status}}
    resp = jsonify(body)
    resp.status_code = code
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def play_fault(fault: Fault) -> Response:
    """Sleep, reset the connection, or answer with the fault's error."""
    if fault.delay:
        time.sleep(fault.delay)
    if fault.reset:
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            import socket as _socket
            try:
                sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        abort(500)  # only reached by servers that don't expose the socket
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
    status = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
              404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
              503: "UNAVAILABLE"}.get(fault.status, "UNKNOWN")
    return google_error(fault.status, fault.message, fault.reason, status, headers)


def oauth_error(error: str, description: str, code: int = 400) -> Response:
    """An error body shaped like Google's OAuth token endpoint answers."""
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = code
    return resp


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def normal_subject(subject: str) -> str:
    return re.sub(r"^\s*((re|fwd?)\s*:\s*)+", "", subject or "", flags=re.I).strip().lower()




def state() -> SandboxState:
    """The state of the sandbox app serving this request."""
    return current_app.extensions["sandbox_state"]


def summary(m: StoredMessage) -> dict:
    """The headers a mailbox list shows."""
    h = m.headers
    return {"id": m.id, "threadId": m.thread_id, "owner": m.owner, "labelIds": m.label_ids,
            "from": h["From"], "to": h["To"], "subject": h["Subject"],
            "messageId": h["Message-ID"], "internalDate": str(m.internal_date),
            "via": m.via, "sizeEstimate": len(m.raw)}


def matches(m: StoredMessage, query: str) -> bool:
    """A small subset of Gmail's search syntax: rfc822msgid:, in:, label:, from:, to:,
    subject:, after: (epoch seconds), and '-' to negate a term."""
    for term in query.split():
        if term.startswith("-") and len(term) > 1:
            if matches(m, term[1:]):
                return False
            continue
        key, _, value = term.partition(":")
        key, value = key.lower(), value.strip('"')
        if key == "after":
            if m.internal_date < int(value) * 1000:
                return False
        elif key == "rfc822msgid":
            if m.headers["Message-ID"].strip().strip("<>") != value.strip("<>"):
                return False
        elif key in ("in", "label"):
            if value.upper() not in m.label_ids:
                return False
        elif key in ("from", "to", "subject"):
            if value.lower() not in m.headers[key.capitalize()].lower():
                return False
        elif not _:
            if term.lower() not in m.headers["Subject"].lower():
                return False
    return True


def part_resource(part, with_bodies: bool) -> dict:
    payload = {"mimeType": part.get_content_type(),
               "headers": [{"name": k, "value": str(v)} for k, v in part.items()]}
    if part.is_multipart():
        payload["parts"] = [part_resource(p, with_bodies) for p in part.iter_parts()]
        payload["body"] = {"size": 0}
    else:
        data = part.get_payload(decode=True) or b""
        payload["body"] = {"size": len(data)}
        if with_bodies:
            payload["body"]["data"] = b64url(data)
    return payload


def message_resource(m: StoredMessage, fmt: str = "full",
                     metadata_headers: list[str] | None = None) -> dict:
    """A users.messages resource in the requested format."""
    parsed = m.parsed
    body = {"id": m.id, "threadId": m.thread_id, "labelIds": m.label_ids,
            "snippet": str(parsed.get("Subject", ""))[:100], "historyId": str(m.history_id),
            "internalDate": str(m.internal_date), "sizeEstimate": len(m.raw)}
    if fmt == "raw":
        body["raw"] = b64url(m.raw)
    elif fmt == "metadata":
        wanted = {h.lower() for h in metadata_headers or []}
        payload = part_resource(parsed, with_bodies=False)
        payload.pop("parts", None)
        if wanted:
            payload["headers"] = [h for h in payload["headers"] if h["name"].lower() in wanted]
        body["payload"] = payload
    elif fmt == "full":
        body["payload"] = part_resource(parsed, with_bodies=True)
    return body


def loopback_only():
    """Refuse (403) a request that is not from this machine: the pages and APIs that show
    or change every mailbox answer loopback clients only."""
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        abort(403)
