"""Test helpers: real WSGI servers on loopback, and a browser-like OAuth sign-in."""
from __future__ import annotations

import json
import socket
import threading
import time
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests
from werkzeug.serving import make_server


def free_port() -> int:
    """An unused loopback port (the tiny race with another process is acceptable here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Serves a WSGI app over real HTTP on 127.0.0.1 in a background thread."""

    def __init__(self, app, port: int | None = None):
        self.server = make_server("127.0.0.1", port or 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _FormParser(HTMLParser):
    """Collects the first form's action, inputs and checked checkboxes."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind == "checkbox" and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))


def parse_form(html: str) -> tuple[str, list[tuple[str, str]]]:
    parser = _FormParser()
    parser.feed(html)
    return parser.action, parser.fields


def google_sign_in(base_url: str, email: str, *, decision: str = "allow",
                   drop_scopes: tuple[str, ...] = (), session: requests.Session | None = None,
                   tamper_state: bool = False) -> requests.Response:
    """Walk /auth/login → sandbox consent page → /auth/callback as a browser would."""
    s = session or requests.Session()
    start = s.get(f"{base_url}/auth/login", allow_redirects=False, timeout=10)
    assert start.status_code == 302, start.text
    consent_url = start.headers["Location"]
    consent = s.get(consent_url, timeout=10)
    assert consent.status_code == 200, consent.text
    action, fields = parse_form(consent.text)
    form = [(k, v) for k, v in fields if k != "email" and not (k == "scope" and v in drop_scopes)]
    if tamper_state:
        form = [(k, "forged" if k == "state" else v) for k, v in form]
    form += [("email", email), ("decision", decision)]
    approved = s.post(urljoin(consent_url, action), data=form, allow_redirects=False,
                      timeout=10)
    assert approved.status_code == 302, approved.text
    return s.get(approved.headers["Location"], allow_redirects=True, timeout=30)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll until predicate() is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def write_credentials(path, sandbox_url: str, client_id: str, secret: str,
                      redirect_uri: str) -> None:
    """A Google-format credentials.json pointing at the sandbox."""
    from sandbox import sandbox_credentials
    path.write_text(json.dumps(sandbox_credentials(sandbox_url, client_id, secret,
                                                   [redirect_uri])))


def worker_env(live, **extra) -> dict:
    """The environment a `mailrelease worker` process needs to join a test's deployment."""
    import os
    s = live.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILRELEASE_")}
    env.update({
        "MAILRELEASE_DATABASE_URL": s.database_url,
        "MAILRELEASE_INSTANCE_PATH": str(s.instance_path),
        "MAILRELEASE_TOKEN_KEY": s.token_key,
        "MAILRELEASE_SECRET_KEY": s.secret_key,
        "MAILRELEASE_GOOGLE_CREDENTIALS": str(s.google_credentials),
        "MAILRELEASE_GMAIL_API_ENDPOINT": s.gmail_api_endpoint,
        "MAILRELEASE_PUBLIC_URL": s.public_url,
        "MAILRELEASE_RETRY_BASE_SECONDS": "0.3",
        "MAILRELEASE_LOG_LEVEL": "WARNING",
        **extra,
    })
    return env


def start_worker(env: dict, log_path):
    """A real `mailrelease worker` process."""
    import subprocess
    import sys
    with open(log_path, "a") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "app", "worker"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def service_account(sandbox_url: str, folder, email: str, project: str,
                    subscription: str | None = None, topic: str | None = None,
                    ack_deadline: int = 10):
    """A service-account JSON key the sandbox Google accepts (its public key registered,
    its `token_uri` the sandbox's), and optionally a pull subscription on a topic;
    returns the key file's path."""
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = Path(folder) / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": project, "private_key_id": "k1",
        "private_key": key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(),
        "client_email": email, "client_id": "1", "token_uri": f"{sandbox_url}/token"}))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    requests.post(f"{sandbox_url}/sandbox/api/service-accounts",
                  json={"email": email, "public_key_pem": public.decode()}, timeout=10)
    if subscription:
        requests.post(f"{sandbox_url}/sandbox/api/pubsub/subscriptions", timeout=10,
                      json={"name": subscription, "topic": topic,
                            "ack_deadline": ack_deadline})
    return path
