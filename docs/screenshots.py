"""Regenerate the README's screenshots: the app and the sandbox Google on loopback, some
data made through the API, and Debian's chromium (Playwright) photographing each page.

    .venv/bin/python docs/screenshots.py      (needs the test extras: make install-test)
"""
from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.tokens import create_token  # noqa: E402
from sandbox import SandboxState, create_sandbox_app  # noqa: E402
from scheduler.settings import Settings  # noqa: E402
from scheduler.store.db import utcnow  # noqa: E402
from scheduler.store.migrate import upgrade  # noqa: E402
from scheduler.wiring import Wiring  # noqa: E402
from scheduler.worker import ReleaseWorker  # noqa: E402
from tests.helpers import ServerThread, free_port, google_sign_in, wait_for, write_credentials  # noqa: E402,E501

OUT = ROOT / "docs"
CLIENT = "shots.apps.googleusercontent.com"


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="mailrelease-shots-"))
    state = SandboxState()
    state.clients[CLIENT] = {"secret": "s", "redirect_uris": []}
    google = ServerThread(create_sandbox_app(state=state))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    write_credentials(tmp / "credentials.json", google.url, CLIENT, "s", base + "/auth/callback")
    settings = Settings.from_env(instance_path=tmp / "instance", env={
        "MAILRELEASE_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
        "MAILRELEASE_GOOGLE_CREDENTIALS": str(tmp / "credentials.json"),
        "MAILRELEASE_GMAIL_API_ENDPOINT": google.url + "/", "MAILRELEASE_PUBLIC_URL": base,
        "MAILRELEASE_SYNC_SECONDS": "3600"})
    upgrade(settings.database_url)
    wiring = Wiring.build(settings)
    db = wiring.db
    worker = ReleaseWorker(wiring)
    ServerThread(create_app(wiring, worker=worker), port)
    worker.start()
    requests.post(google.url + "/sandbox/api/send-as", json={
        "owner": "ada@example.com", "email": "support@example.com", "name": "Acme Support"})
    google_sign_in(base, "ada@example.com")
    with db.write() as s:
        token = create_token(s, "ada@example.com", "shots", utcnow())
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    _data(api, base, google.url)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1280, "height": 860},
                                   timezone_id="Europe/Paris").new_page()
        page.goto(base + "/")
        page.get_by_role("link", name="Sign in with Google").click()
        page.fill("input[name=email]", "ada@example.com")
        page.locator("button[value=allow]").click()
        page.wait_for_url(base + "/**")
        thread = next(m.thread_id for m in state.messages.values()
                      if m.headers.get("Subject") == "Cannot log in")
        shots = {"queue": "/", "dashboard": "/dashboard?days=7", "compose": "/compose",
                 "replies": "/replies", "reply": f"/replies/1/{thread}",
                 "templates": "/templates", "preview": "/templates/1", "contacts": "/contacts",
                 "rules": "/rules", "campaigns": "/campaigns", "accounts": "/accounts",
                 "team": "/team", "settings": "/settings", "schedules": "/schedules",
                 "contact": "/contacts/25",
                 "message": "/messages/" + api.get(base + "/api/v1/messages?limit=1").json()[
                     "items"][0]["id"]}
        for name, path in shots.items():
            page.goto(base + path)
            if name == "dashboard":
                page.locator("body[data-charts-drawn]").wait_for()
            if name in ("reply", "compose"):
                if name == "compose":
                    page.fill("#to", "Grace Hopper <grace@example.org>")
                    page.select_option("#template_id", label="Welcome")
                page.locator("[data-preview][data-preview-ready]").wait_for()
                page.wait_for_timeout(500)  # the frame paints its srcdoc after the attribute
            if name == "preview":
                page.locator("[data-preview]").scroll_into_view_if_needed()
                page.wait_for_timeout(300)
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
            print("wrote", OUT / f"{name}.png")
        # The same app on a phone: the menu folds, tables keep their labels.
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                    device_scale_factor=2, timezone_id="Europe/Paris")
        phone.add_cookies(page.context.cookies())
        small = phone.new_page()
        for name, path in (("queue-phone", "/"), ("contacts-phone", "/contacts")):
            small.goto(base + path)
            small.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
            print("wrote", OUT / f"{name}.png")
        browser.close()
    worker.stop()


def _data(api, base: str, google: str) -> None:
    """A team with some history: sends, opens, a reply, a campaign, rules, a member."""
    api.post(base + "/api/v1/contacts", json=[
        {"email": f"reader{i}@example.org", "name": f"Reader {i}",
         "timezone": ["Europe/Paris", "America/New_York", "Asia/Tokyo"][i % 3],
         "attributes": {"first_name": f"Reader{i}", "plan": "pro" if i % 2 else "free",
                        "start_url": "https://app.example.com/start"}}
        for i in range(24)] + [{"email": "grace@example.org", "name": "Grace Hopper",
                                "attributes": {"first_name": "Grace",
                                               "start_url": "https://app.example.com/start"}}])
    welcome = api.post(base + "/api/v1/templates", json={"starter": "welcome"}).json()
    api.post(base + "/api/v1/templates", json={"starter": "support-reply"})
    api.post(base + "/api/v1/rules", json={"seed": "abandoned-cart"})
    api.post(base + "/api/v1/campaigns", json={
        "name": "Spring launch", "template_id": welcome["id"],
        "variants": [{"key": "A"}, {"key": "B", "subject": "Spring is here, {{ name }}"}]})
    wait_for(lambda: requests.get(google + "/sandbox/api/count").json()["count"] >= 24,
             timeout=60)
    # Some people open it (the signed pixel, fetched as their mail client would).
    time.sleep(0.6)
    for item in requests.get(google + "/sandbox/api/messages").json()["messages"][::3]:
        raw = base64.urlsafe_b64decode(item["raw"] + "=" * (-len(item["raw"]) % 4))
        html = email.message_from_bytes(raw, policy=email.policy.default).get_body(
            ("html",)).get_content()
        pixel = re.search(r'src="([^"]+/t/o/[^"]+)"', html)
        if pixel:
            requests.get(pixel.group(1), headers={"User-Agent": "Mozilla/5.0"})
    api.post(base + "/api/v1/messages", json={
        "to": "reader1@example.org", "template_id": welcome["id"],
        "send_at": (utcnow() + dt.timedelta(days=2)).isoformat()})
    api.post(base + "/api/v1/messages", json={
        "to": "reader2@example.org", "subject": "Your invoice", "html": "<p>{{ missing }}</p>"})
    api.post(base + "/api/v1/schedules", json={
        "name": "Monday digest", "cron": "0 9 * * mon", "timezone": "Europe/Paris",
        "template_id": welcome["id"], "to": "Grace Hopper <grace@example.org>"})
    api.post(base + "/api/v1/segments", json={
        "name": "Pro plan", "conditions": [{"field": "contact.plan", "op": "equals",
                                            "value": "pro"}]})
    api.post(base + "/api/v1/team/invitations", json={"email": "bob@example.com",
                                                      "role": "member", "send_email": False})
    requests.post(google + "/sandbox/api/deliver", json={"owner": "ada@example.com", "raw": (
        "From: Grace Hopper <grace@example.org>\r\nTo: ada@example.com\r\nSubject: Cannot "
        "log in\r\nMessage-ID: <q1@example.org>\r\n\r\nHelp, my code is refused.\r\n")})


if __name__ == "__main__":
    main()
