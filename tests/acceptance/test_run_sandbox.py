"""`mailrelease run --sandbox` as a user starts it: one real process serving the app, the
worker and the sandbox Google."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import requests

from tests.helpers import free_port, google_sign_in, wait_for
from tests.integration.test_ui import _csrf, _up


def test_run_with_sandbox_serves_everything_in_one_process(tmp_path):
    """Also at DEBUG, where libraries log requests and bodies: no secret in the log."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILRELEASE_")}
    env["MAILRELEASE_INSTANCE_PATH"] = str(tmp_path / "instance")
    env["MAILRELEASE_LOG_LEVEL"] = "DEBUG"
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "run", "--port", str(port),
                             "--sandbox"], env=env, cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _up(base), 30, 0.2)
        browser = requests.Session()
        page = google_sign_in(base, "sam@example.com", session=browser)
        assert "Connected sam@example.com" in page.text
        form = browser.get(base + "/compose").text
        browser.post(base + "/compose", data={
            "csrf_token": _csrf(form), "to": "pat@example.org", "subject": "Sandbox hello",
            "html": "<p>hi</p>", "data": "{}", "when": "now", "timezone": "UTC"})
        mailbox = wait_for(lambda: "Sandbox hello" in (t := browser.get(
            base + "/sandbox-google/sandbox/").text) and t, 10)
        assert "pat@example.org" in mailbox
        assert "sent" in browser.get(base + "/").text
        # The sandbox's Gmail add-on host, signed with the sandbox's key: the add-on
        # answers sam with their own mailbox's standing.
        host = browser.get(f"{base}/sandbox-google/sandbox/addon",
                           params={"owner": "sam@example.com", "app": base})
        sid = host.url.split("sid=")[1]
        shown = browser.post(f"{base}/sandbox-google/sandbox/addon/trigger",
                             data={"sid": sid, "kind": "homepage"}).text
        assert "Today&#39;s sends" in shown and "sam@example.com" in shown
        assert re.search(r"\b1 of [0-9,]+ in the last 24 hours", shown), shown
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        log.close()
    text = (tmp_path / "run.log").read_text()
    assert "DEBUG" in text and "/auth/callback" in text  # the noisy lines are there
    client = json.loads((tmp_path / "instance" / "sandbox-client.json").read_text())
    for secret in (client["client_secret"], "ya29.sandbox-", "1//sandbox-", "eyJ"):
        assert secret not in text, secret
    assert not re.search(r"[?&]code=(?!\[redacted\])", text)
    for name in ("sandbox-client.json", "sandbox-credentials.json", "mailrelease.db",
                 "secret_key", "token_key"):
        mode = (tmp_path / "instance" / name).stat().st_mode & 0o777
        assert mode == 0o600, (name, oct(mode))
