"""Acceptance: separate `mailrelease web` and `mailrelease worker` processes, as a user runs
them."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
import requests

from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.helpers import free_port, google_sign_in, wait_for, write_credentials


@pytest.fixture
def processes(tmp_path, sandbox):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    write_credentials(tmp_path / "credentials.json", sandbox.url, CLIENT_ID, CLIENT_SECRET,
                      f"{base}/auth/callback")
    env = {**os.environ,
           "MAILRELEASE_DATABASE_URL": f"sqlite:///{tmp_path / 'instance' / 'mr.db'}",
           "MAILRELEASE_INSTANCE_PATH": str(tmp_path / "instance"),
           "MAILRELEASE_GOOGLE_CREDENTIALS": str(tmp_path / "credentials.json"),
           "MAILRELEASE_GMAIL_API_ENDPOINT": sandbox.url + "/",
           "MAILRELEASE_PUBLIC_URL": base}
    cmd = [sys.executable, "-m", "app"]
    # Migrate first so the two processes don't race to create the schema.
    subprocess.run(cmd + ["db", "upgrade"], env=env, check=True, cwd=tmp_path,
                   capture_output=True)
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("web", "worker")}
    procs = [subprocess.Popen(cmd + ["web", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=logs["web"], stderr=subprocess.STDOUT),
             subprocess.Popen(cmd + ["worker"], env=env, cwd=tmp_path,
                              stdout=logs["worker"], stderr=subprocess.STDOUT)]

    def healthy():
        try:
            body = requests.get(base + "/healthz", timeout=1).json()
            return body["scheduler"]["workers"] and body
        except (requests.RequestException, ValueError):
            return None
    try:
        health = wait_for(healthy, 30, 0.2)
        yield {"url": base, "env": env, "cmd": cmd, "tmp": tmp_path, "health": health}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
        for fh in logs.values():
            fh.close()
    assert [p.returncode for p in procs] == [0, 0], "SIGTERM must stop both cleanly"


def test_web_and_worker_processes_release_a_message_on_time(processes, sandbox):
    url = processes["url"]
    assert processes["health"]["scheduler"]["in_process"] is False
    page = google_sign_in(url, "ada@example.com")
    assert "Connected ada@example.com" in page.text
    created = subprocess.run(processes["cmd"] + ["token", "create", "--email",
                                                 "ada@example.com"],
                             env=processes["env"], cwd=processes["tmp"], capture_output=True,
                             text=True, check=True)
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and token.startswith("mr_")

    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)
    mid = api.post(url + "/api/v1/messages", json={
        "to": "grace@example.org", "subject": "Hello {{ n }}", "html": "<p>{{ n }}</p>",
        "data": {"n": "Grace"}, "send_at": due.isoformat()}).json()["id"]
    body = wait_for(lambda: (b := api.get(f"{url}/api/v1/messages/{mid}").json())
                    ["status"] == "sent" and b, 15)
    lateness = (dt.datetime.fromisoformat(body["sent_at"]) - due).total_seconds()
    assert 0 <= lateness < 1.0, lateness
    (entry,) = sandbox.sent()
    assert entry["id"] == body["gmail_message_id"] and entry["subject"] == "Hello Grace"

    db_file = processes["tmp"] / "instance" / "mr.db"
    stored = b"".join(p.read_bytes() for p in db_file.parent.glob("mr.db*"))
    for grant in sandbox.state.grants.values():
        assert grant.refresh_token.encode() not in stored
    for access in sandbox.state.access_tokens:
        assert access.encode() not in stored
    assert token.encode() not in stored


def test_token_create_for_unknown_user_fails_clearly(processes):
    result = subprocess.run(processes["cmd"] + ["token", "create", "--email", "no@example.com"],
                            env=processes["env"], cwd=processes["tmp"], capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "sign in" in result.stderr
