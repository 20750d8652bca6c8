"""Event-to-send latency: signed webhook events whose rule has no delay, sent one by one.

    .venv/bin/python bench/event_bench.py            # 30 events, the figure in README
    .venv/bin/python bench/event_bench.py --events 100

Starts `mailrelease run --sandbox` (web + worker in one process, SQLite) on a free port,
signs in through the sandbox Google, makes a template and a rule, then posts each event
with an HMAC signature (0.5 s apart: one account is paced to 2.5 sends/s) and waits for
Gmail's answer. Latency = the message's sent_at (when
Gmail answered) − the event's arrival as the server recorded it (the event's `queued`
event time), and also as the client saw it (POST sent → status `sent` read back).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.automation.events import sign
from tests.helpers import parse_form


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_in(base: str, email: str) -> None:
    session = requests.Session()
    start = session.get(f"{base}/auth/login", allow_redirects=False, timeout=10)
    consent_url = start.headers["Location"]
    consent = session.get(consent_url, timeout=10)
    action, fields = parse_form(consent.text)
    form = [(k, v) for k, v in fields if k != "email"] + [("email", email),
                                                         ("decision", "allow")]
    approved = session.post(urljoin(consent_url, action), data=form, allow_redirects=False,
                            timeout=10)
    session.get(approved.headers["Location"], timeout=30)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MAILRELEASE_INSTANCE_PATH": tmp,
               "MAILRELEASE_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
               "MAILRELEASE_PUBLIC_URL": base, "MAILRELEASE_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen([sys.executable, "-m", "app", "run", "--sandbox", "--port",
                                   str(port)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    requests.get(base + "/healthz", timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            sign_in(base, "bench@example.com")
            token = subprocess.run([sys.executable, "-m", "app", "token", "create", "--email",
                                    "bench@example.com"], cwd=ROOT, env=env, check=True,
                                   capture_output=True, text=True).stdout.strip()
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {token}"
            template = api.post(f"{base}/api/v1/templates", json={
                "name": "welcome", "subject": "Welcome {{ name | default('there') }}",
                "html": "<p>Hi {{ name | default('there') }}</p>"}).json()
            api.post(f"{base}/api/v1/rules", json={"event": "signup",
                                                   "template_id": template["id"]})
            secret = api.get(f"{base}/api/v1/webhook-secret").json()["secret"]
            server_side, client_side = [], []
            for i in range(args.events):
                # Events half a second apart: one Gmail account is paced to 2.5 sends/s, so
                # back-to-back events would measure the pacing, not the path.
                time.sleep(0.5)
                body = json.dumps({"id": f"evt-{i}", "name": "signup",
                                   "email": f"user{i}@example.org",
                                   "data": {"name": f"User {i}"}}).encode()
                started = time.perf_counter()
                resp = requests.post(f"{base}/api/v1/events", data=body, timeout=10, headers={
                    "Content-Type": "application/json",
                    "X-Mailrelease-Signature": sign(secret, body)})
                (mid,) = resp.json()["messages"]
                while True:
                    m = api.get(f"{base}/api/v1/messages/{mid}").json()
                    if m["status"] == "sent":
                        break
                    time.sleep(0.005)
                client_side.append(time.perf_counter() - started)
                queued = dt.datetime.fromisoformat(m["events"][0]["at"])
                server_side.append((dt.datetime.fromisoformat(m["sent_at"]) - queued)
                                   .total_seconds())
            for label, values in (("server", server_side), ("client", client_side)):
                print(f"event_to_send events={args.events} measured={label} "
                      f"p50_ms={percentile(values, 50) * 1000:.0f} "
                      f"p99_ms={percentile(values, 99) * 1000:.0f} "
                      f"max_ms={max(values) * 1000:.0f}", flush=True)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
