"""The sandbox Google: OAuth and Gmail endpoints on loopback, in Google's wire format.

The real google-api-python-client and google-auth-oauthlib talk to it unchanged, so a new user
can try mailrelease without Google credentials, and the tests exercise the real code path
over real HTTP. Its mailbox pages show exactly what recipients would receive.
It keeps its state in memory; nothing here ever reaches the real Google.
"""
from __future__ import annotations

import base64
import binascii
import email
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr
from urllib.parse import urlencode

from flask import Flask, Response, abort, jsonify, redirect, render_template, request

GMAIL_SEND_SCOPES = {"https://www.googleapis.com/auth/gmail.send",
                     "https://www.googleapis.com/auth/gmail.compose",
                     "https://www.googleapis.com/auth/gmail.modify", "https://mail.google.com/"}
GMAIL_READ_SCOPES = {"https://www.googleapis.com/auth/gmail.readonly",
                     "https://www.googleapis.com/auth/gmail.modify", "https://mail.google.com/"}
GMAIL_COMPOSE_SCOPES = {"https://www.googleapis.com/auth/gmail.compose",
                        "https://www.googleapis.com/auth/gmail.modify",
                        "https://mail.google.com/"}
GMAIL_SETTINGS_SCOPES = {"https://www.googleapis.com/auth/gmail.settings.basic"}
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


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _normal_subject(subject: str) -> str:
    return re.sub(r"^\s*((re|fwd?)\s*:\s*)+", "", subject or "", flags=re.I).strip().lower()


def create_sandbox_app(clients: dict[str, dict] | None = None,
                       state: SandboxState | None = None) -> Flask:
    """Build the sandbox. `clients` maps client_id to {"secret", "redirect_uris"}."""
    app = Flask(__name__, template_folder="templates/sandbox")
    st = state or SandboxState()
    st.clients.update(clients or {})
    app.extensions["sandbox_state"] = st

    # -- OAuth --------------------------------------------------------------------------

    def _client_or_error(client_id: str, redirect_uri: str | None):
        client = st.clients.get(client_id)
        if client is None:
            return None, "The OAuth client was not found."
        allowed = client.get("redirect_uris") or []
        if redirect_uri is not None and allowed and redirect_uri not in allowed:
            return None, f"redirect_uri_mismatch: {redirect_uri} is not registered"
        return client, None

    @app.get("/o/oauth2/auth")
    def authorize():
        args = request.args
        client, problem = _client_or_error(args.get("client_id", ""), args.get("redirect_uri"))
        if problem:
            return render_template("error.html", problem=problem), 400
        if args.get("response_type") != "code":
            return render_template("error.html", problem="response_type must be code"), 400
        scopes = args.get("scope", "").split()
        return render_template("consent.html", args=args, scopes=scopes,
                               login_hint=args.get("login_hint") or "ada@example.com")

    @app.post("/o/oauth2/approve")
    def approve():
        form = request.form
        redirect_uri = form.get("redirect_uri", "")
        client, problem = _client_or_error(form.get("client_id", ""), redirect_uri)
        if problem:
            return render_template("error.html", problem=problem), 400
        params = {"state": form.get("state", "")}
        if form.get("decision") != "allow":
            params["error"] = "access_denied"
            return redirect(f"{redirect_uri}?{urlencode(params)}")
        email_addr = form.get("email", "").strip().lower()
        if "@" not in email_addr:
            return render_template("error.html", problem="enter an email address"), 400
        granted = form.getlist("scope")
        with st.lock:
            if form.get("include_granted_scopes") == "true":
                for grant in st.grants.values():
                    if (grant.email == email_addr and grant.client_id == form["client_id"]
                            and not grant.revoked):
                        granted = sorted(set(granted) | set(grant.scopes))
            code = secrets.token_urlsafe(24)
            st.codes[code] = {
                "client_id": form["client_id"], "redirect_uri": redirect_uri,
                "email": email_addr, "scopes": granted, "expires": time.time() + 600,
                "challenge": form.get("code_challenge") or None,
                "method": form.get("code_challenge_method") or "plain",
            }
        params.update(code=code, scope=" ".join(granted))
        return redirect(f"{redirect_uri}?{urlencode(params)}")

    def _client_credentials():
        auth = request.authorization
        if auth and auth.type == "basic":
            return auth.username, auth.password
        return request.form.get("client_id", ""), request.form.get("client_secret", "")

    def _new_access_token(grant: Grant) -> dict:
        token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        st.access_tokens[token] = {"email": grant.email, "scopes": grant.scopes,
                                   "expires": time.time() + st.access_token_seconds,
                                   "refresh_token": grant.refresh_token}
        return {"access_token": token, "expires_in": st.access_token_seconds,
                "scope": " ".join(grant.scopes), "token_type": "Bearer"}

    @app.post("/token")
    def token():
        client_id, secret = _client_credentials()
        client = st.clients.get(client_id)
        if client is None or not secrets.compare_digest(client["secret"], secret or ""):
            return oauth_error("invalid_client", "The OAuth client was not found.", 401)
        grant_type = request.form.get("grant_type")
        fault = st.take_fault("token")
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status >= 500:
                # Google's front end answers an outage with an HTML page, not OAuth JSON.
                return Response(f"<html><title>Error {fault.status}</title><body>"
                                f"{fault.message}</body></html>", status=fault.status,
                                mimetype="text/html")
            return oauth_error(fault.reason, fault.message, fault.status)
        with st.lock:
            if grant_type == "authorization_code":
                return _exchange_code(client_id)
            if grant_type == "refresh_token":
                grant = st.grants.get(request.form.get("refresh_token", ""))
                if grant is None or grant.revoked or grant.client_id != client_id:
                    return oauth_error("invalid_grant", "Token has been expired or revoked.")
                return jsonify(_new_access_token(grant))
        return oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _exchange_code(client_id: str) -> Response:
        code = st.codes.pop(request.form.get("code", ""), None)
        if code is None or code["expires"] < time.time() or code["client_id"] != client_id:
            return oauth_error("invalid_grant", "Malformed auth code.")
        if request.form.get("redirect_uri") != code["redirect_uri"]:
            return oauth_error("redirect_uri_mismatch", "Bad Request")
        if code["challenge"]:
            verifier = request.form.get("code_verifier", "")
            if not verifier:
                return oauth_error("invalid_request", "code_verifier or verifier is not set.")
            if code["method"] == "S256":
                computed = _b64url(hashlib.sha256(verifier.encode()).digest())
            else:
                computed = verifier
            if not secrets.compare_digest(computed, code["challenge"]):
                return oauth_error("invalid_grant", "Invalid code verifier.")
        grant = Grant(email=code["email"], client_id=client_id, scopes=code["scopes"],
                      refresh_token="1//sandbox-" + secrets.token_urlsafe(32))
        st.grants[grant.refresh_token] = grant
        body = _new_access_token(grant)
        body["refresh_token"] = grant.refresh_token
        if "openid" in grant.scopes:
            body["id_token"] = _id_token(grant)
        return jsonify(body)

    def _id_token(grant: Grant) -> str:
        """An ID token shaped like Google's (the sandbox does not sign it)."""
        now = int(time.time())
        claims = {"iss": "https://accounts.google.com", "aud": grant.client_id,
                  "sub": hashlib.sha256(grant.email.encode()).hexdigest()[:21],
                  "email": grant.email, "email_verified": True, "iat": now, "exp": now + 3600}
        header = {"alg": "RS256", "kid": "sandbox", "typ": "JWT"}
        return ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims)) \
            + ".sandbox-unsigned"

    @app.post("/revoke")
    def revoke():
        token = request.values.get("token", "")
        with st.lock:
            grant = st.grants.get(token)
            if grant is None and token in st.access_tokens:
                grant = st.grants.get(st.access_tokens[token]["refresh_token"])
            if grant is None:
                return oauth_error("invalid_token", "Token expired or revoked")
            grant.revoked = True
            for key in [k for k, v in st.access_tokens.items()
                        if v["refresh_token"] == grant.refresh_token]:
                del st.access_tokens[key]
        return jsonify({})

    # -- Gmail ----------------------------------------------------------------------------

    def _caller(user_id: str, needs: set[str]):
        """(email, None) for a valid Bearer token with one of `needs`, else (None, error)."""
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

    @app.get("/gmail/v1/users/<user_id>/profile")
    def profile(user_id):
        # As at Google: gmail.send alone may not read the profile.
        owner, err = _caller(user_id, GMAIL_PROFILE_SCOPES)
        if err:
            return err
        with st.lock:
            box = st.mailbox(owner)
            return jsonify({"emailAddress": owner, "messagesTotal": len(box),
                            "threadsTotal": len({m.thread_id for m in box}),
                            "historyId": str(st.next_history())})

    @app.post("/gmail/v1/users/<user_id>/messages/send")
    def send(user_id):
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
            raw = _unb64url(body["raw"])
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
                if _normal_subject(thread[0].parsed["Subject"]) != _normal_subject(
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

    @app.get("/gmail/v1/users/<user_id>/messages")
    def list_messages(user_id):
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
                     if _matches(m, query)]
        page = found[start:start + max_results]
        body = {"messages": [{"id": m.id, "threadId": m.thread_id} for m in page],
                "resultSizeEstimate": len(found)}
        if not page:
            del body["messages"]
        if start + max_results < len(found):
            body["nextPageToken"] = str(start + max_results)
        return jsonify(body)

    @app.get("/gmail/v1/users/<user_id>/messages/<msg_id>")
    def get_message(user_id, msg_id):
        owner, err = _caller(user_id, GMAIL_READ_SCOPES)
        if err:
            return err
        with st.lock:
            stored = st.messages.get(msg_id)
        if stored is None or stored.owner != owner:
            return google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        return jsonify(message_resource(stored, request.args.get("format", "full"),
                                        request.args.getlist("metadataHeaders")))

    @app.get("/gmail/v1/users/<user_id>/threads/<thread_id>")
    def get_thread(user_id, thread_id):
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

    @app.get("/gmail/v1/users/<user_id>/threads")
    def list_threads(user_id):
        """threads.list: newest activity first, with the q search of messages.list."""
        owner, err = _caller(user_id, GMAIL_READ_SCOPES)
        if err:
            return err
        query = request.args.get("q", "")
        max_results = min(int(request.args.get("maxResults", 100)), 500)
        start = int(request.args.get("pageToken") or 0)
        latest: dict[str, StoredMessage] = {}
        with st.lock:
            for m in st.mailbox(owner):
                if _matches(m, query) and (m.thread_id not in latest or
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

    @app.get("/gmail/v1/users/<user_id>/settings/sendAs")
    def list_send_as(user_id):
        """settings.sendAs.list: the primary address and the aliases."""
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
    @app.post("/gmail/v1/users/<user_id>/drafts")
    def create_draft(user_id):
        owner, err = _caller(user_id, GMAIL_COMPOSE_SCOPES)
        if err:
            return err
        body = request.get_json(silent=True) or {}
        try:
            raw = _unb64url((body.get("message") or {}).get("raw") or "")
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

    @app.get("/gmail/v1/users/<user_id>/drafts")
    def list_drafts(user_id):
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

    @app.get("/gmail/v1/users/<user_id>/drafts/<draft_id>")
    def get_draft(user_id, draft_id):
        owner, err = _caller(user_id, GMAIL_PROFILE_SCOPES)
        if err:
            return err
        with st.lock:
            stored = st.drafts.get(draft_id)
        if stored is None or stored.owner != owner:
            return google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        return jsonify({"id": draft_id, "message": message_resource(
            stored, request.args.get("format", "full"))})

    # -- what recipients see ----------------------------------------------------------------

    @app.get("/favicon.ico")
    def favicon():
        return "", 204  # browsers ask on every page; nothing to show

    @app.get("/sandbox/")
    def mailbox():
        with st.lock:
            messages = sorted(st.messages.values(), key=lambda m: -m.internal_date)
        return render_template("mailbox.html", messages=[summary(m) for m in messages])

    @app.get("/sandbox/messages/<msg_id>")
    def show_message(msg_id):
        with st.lock:
            stored = st.messages.get(msg_id)
        if stored is None:
            abort(404)
        parsed = stored.parsed
        parts = {p.get_content_type(): p.get_content() for p in parsed.walk()
                 if not p.is_multipart()}
        return render_template("message.html", m=summary(stored), headers=parsed.items(),
                               parts=parts)

    @app.get("/sandbox/api/count")
    def api_count():
        """How many messages the sandbox Gmail has accepted."""
        with st.lock:
            return jsonify({"count": sum("SENT" in m.label_ids
                                         for m in st.messages.values())})

    @app.get("/sandbox/api/messages")
    def api_messages():
        """Every message sent through the sandbox (not mail delivered to it), for tests."""
        with st.lock:
            messages = sorted((m for m in st.messages.values() if "SENT" in m.label_ids),
                              key=lambda m: m.internal_date)
        return jsonify({"messages": [{**summary(m), "raw": _b64url(m.raw)} for m in messages]})

    @app.get("/gmail/v1/users/<user_id>/history")
    def history(user_id):
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

    @app.post("/sandbox/api/deliver")
    def deliver():
        """Mail arriving in a mailbox: {"owner", "raw"} (MIME text). A reply or a bounce
        joins the thread of the message it names (In-Reply-To, References), as in Gmail."""
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

    @app.post("/sandbox/api/drafts")
    def add_draft():
        """Put a draft in a mailbox, as its owner would in Gmail: {"owner", "raw"} (MIME)."""
        body = request.get_json(silent=True) or {}
        with st.lock:
            msg_id, draft_id = st.next_id(), "r" + str(st.next_history())
            st.drafts[draft_id] = StoredMessage(
                id=msg_id, thread_id=msg_id, label_ids=["DRAFT"],
                raw=str(body.get("raw", "")).encode(), internal_date=int(time.time() * 1000),
                history_id=st.next_history(), owner=str(body.get("owner", "")).lower())
        return jsonify({"id": draft_id})

    @app.post("/sandbox/api/faults")
    def add_faults():
        """Queue faults: a JSON list of Fault fields (method, status, times, ...)."""
        items = request.get_json(force=True)
        items = items if isinstance(items, list) else [items]
        try:
            faults = [Fault(**item) for item in items]
        except TypeError as exc:
            return jsonify({"error": str(exc)}), 400
        with st.lock:
            st.faults.extend(faults)
        return jsonify({"queued": len(faults)})

    @app.delete("/sandbox/api/faults")
    def clear_faults():
        with st.lock:
            st.faults.clear()
        return jsonify({})

    @app.post("/sandbox/api/settings")
    def change_settings():
        """Set send_latency (seconds) or access_token_seconds."""
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

    @app.post("/sandbox/api/send-as")
    def add_send_as():
        """Add a "Send mail as" alias: {"owner", "email", "name", "verified" (true)}."""
        body = request.get_json(force=True) or {}
        owner = str(body.get("owner", "")).lower()
        with st.lock:
            st.send_as.setdefault(owner, []).append({
                "sendAsEmail": str(body.get("email", "")).lower(),
                "displayName": str(body.get("name", "")),
                "verificationStatus": "accepted" if body.get("verified", True) else "pending"})
        return jsonify({"aliases": len(st.send_as[owner])})

    @app.post("/sandbox/api/revoke")
    def revoke_all():
        """Revoke every grant of an address, as a user would in their Google account."""
        email_addr = (request.get_json(force=True) or {}).get("email", "").lower()
        with st.lock:
            hit = [g for g in st.grants.values() if g.email == email_addr]
            for grant in hit:
                grant.revoked = True
        return jsonify({"revoked": len(hit)})

    return app


def summary(m: StoredMessage) -> dict:
    """The headers a mailbox list shows."""
    h = m.headers
    return {"id": m.id, "threadId": m.thread_id, "owner": m.owner, "labelIds": m.label_ids,
            "from": h["From"], "to": h["To"], "subject": h["Subject"],
            "messageId": h["Message-ID"], "internalDate": str(m.internal_date)}


def _matches(m: StoredMessage, query: str) -> bool:
    """A small subset of Gmail's search syntax: rfc822msgid:, in:, label:, from:, to:,
    subject:, after: (epoch seconds), and '-' to negate a term."""
    for term in query.split():
        if term.startswith("-") and len(term) > 1:
            if _matches(m, term[1:]):
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


def _payload(part, with_bodies: bool) -> dict:
    payload = {"mimeType": part.get_content_type(),
               "headers": [{"name": k, "value": str(v)} for k, v in part.items()]}
    if part.is_multipart():
        payload["parts"] = [_payload(p, with_bodies) for p in part.iter_parts()]
        payload["body"] = {"size": 0}
    else:
        data = part.get_payload(decode=True) or b""
        payload["body"] = {"size": len(data)}
        if with_bodies:
            payload["body"]["data"] = _b64url(data)
    return payload


def message_resource(m: StoredMessage, fmt: str = "full",
                     metadata_headers: list[str] | None = None) -> dict:
    """A users.messages resource in the requested format."""
    parsed = m.parsed
    body = {"id": m.id, "threadId": m.thread_id, "labelIds": m.label_ids,
            "snippet": str(parsed.get("Subject", ""))[:100], "historyId": str(m.history_id),
            "internalDate": str(m.internal_date), "sizeEstimate": len(m.raw)}
    if fmt == "raw":
        body["raw"] = _b64url(m.raw)
    elif fmt == "metadata":
        wanted = {h.lower() for h in metadata_headers or []}
        payload = _payload(parsed, with_bodies=False)
        payload.pop("parts", None)
        if wanted:
            payload["headers"] = [h for h in payload["headers"] if h["name"].lower() in wanted]
        body["payload"] = payload
    elif fmt == "full":
        body["payload"] = _payload(parsed, with_bodies=True)
    return body


def sandbox_credentials(base_url: str, client_id: str, client_secret: str,
                        redirect_uris: list[str]) -> dict:
    """A credentials.json (Google's format) pointing at a sandbox served at `base_url`."""
    base = base_url.rstrip("/")
    return {"web": {
        "client_id": client_id, "project_id": "mailrelease-sandbox",
        "auth_uri": f"{base}/o/oauth2/auth", "token_uri": f"{base}/token",
        "auth_provider_x509_cert_url": f"{base}/oauth2/v1/certs",
        "client_secret": client_secret, "redirect_uris": redirect_uris,
    }}


__all__ = ["create_sandbox_app", "sandbox_credentials", "SandboxState"]
