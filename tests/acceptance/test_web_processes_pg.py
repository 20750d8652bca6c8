"""Several `mailrelease web` processes (gunicorn) and a worker on PostgreSQL, as a user runs
them: events from many clients at once, accepted and run each exactly once."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.helpers import free_port, google_sign_in, wait_for, write_credentials


def _up(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def test_three_web_processes_take_events_from_many_clients_each_exactly_once(
        tmp_path, sandbox, pg_url):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    write_credentials(tmp_path / "credentials.json", sandbox.url, CLIENT_ID, CLIENT_SECRET,
                      f"{base}/auth/callback")
    env = {**os.environ, "MAILRELEASE_DATABASE_URL": pg_url,
           "MAILRELEASE_INSTANCE_PATH": str(tmp_path / "instance"),
           "MAILRELEASE_GOOGLE_CREDENTIALS": str(tmp_path / "credentials.json"),
           "MAILRELEASE_GMAIL_API_ENDPOINT": sandbox.url + "/",
           "MAILRELEASE_PUBLIC_URL": base, "MAILRELEASE_POLL_SECONDS": "1",
           # Sends unpaced: the test is about intake, not Gmail's per-user rate.
           "MAILRELEASE_SENDS_PER_SECOND": "0"}
    cmd = [sys.executable, "-m", "app"]
    subprocess.run(cmd + ["db", "upgrade"], env=env, check=True, cwd=tmp_path,
                   capture_output=True)
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("web", "worker")}
    web = subprocess.Popen(cmd + ["web", "--port", str(port), "--processes", "3"], env=env,
                           cwd=tmp_path, stdout=logs["web"], stderr=subprocess.STDOUT)
    worker = subprocess.Popen(cmd + ["worker"], env=env, cwd=tmp_path, stdout=logs["worker"],
                              stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _up(base), 30, 0.2)
        children = subprocess.run(["pgrep", "-P", str(web.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) == 3, children
        google_sign_in(base, "ada@example.com")
        token = subprocess.run(cmd + ["token", "create", "--email", "ada@example.com"],
                               env=env, cwd=tmp_path, capture_output=True, text=True,
                               check=True).stdout.strip()
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        welcome = api.post(base + "/api/v1/templates", json={
            "name": "welcome", "subject": "Welcome", "html": "<p>Hi</p>"}).json()
        api.post(base + "/api/v1/rules", json={"event": "signup",
                                               "template_id": welcome["id"]})

        def send(n: int) -> dict:
            with requests.Session() as s:
                s.headers["Authorization"] = f"Bearer {token}"
                body = {"id": f"e{n % 120}", "name": "signup",  # each id sent twice
                        "email": f"p{n % 120}@example.org"}
                headers = {"Prefer": "respond-async"} if n % 2 else {}
                resp = s.post(base + "/api/v1/events", json=body, headers=headers,
                              timeout=30)
                assert resp.status_code in (202, 409), resp.text
                return resp.json()

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, range(240)))
        ids = {a["event_id"] for a in answers if "event_id" in a}
        assert len(ids) == 120
        wait_for(lambda: all(api.get(f"{base}/api/v1/events/{i}").json()["status"] == "done"
                             for i in ids), 30)
        wait_for(lambda: len(sandbox.sent()) == 120, 60)
        sent = api.get(base + "/api/v1/messages?status=sent&limit=500").json()["items"]
        assert sorted(m["to"] for m in sent) == sorted(f"p{n}@example.org"
                                                       for n in range(120))
    finally:
        for proc in (web, worker):
            proc.terminate()
        for proc in (web, worker):
            proc.wait(timeout=30)
        for fh in logs.values():
            fh.close()
    assert [web.returncode, worker.returncode] == [0, 0], "SIGTERM must stop both cleanly"
