"""After a message leaves: opens, clicks, unsubscribes, AMP live data, bounces and replies."""
from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import re
import time

import pytest
import requests
from flask import Flask, jsonify
from sqlalchemy import update

from scheduler.db import utcnow
from scheduler.models import Message

from tests.helpers import ServerThread, wait_for


def _send(live, api, **fields) -> dict:
    body = {"to": "reader@example.org", "subject": "News", "html":
            '<html><body><p>Read <a href="https://example.com/post?a=1&amp;b=2">this</a>'
            '</p></body></html>', **fields}
    resp = api.post(f"{live.url}/api/v1/messages", json=body)
    assert resp.status_code == 201, resp.text
    mid = resp.json()["id"]
    return wait_for(lambda: (b := api.get(f"{live.url}/api/v1/messages/{mid}").json())
                    ["status"] in ("sent", "cancelled", "held") and b)


def _delivered(live, index=-1) -> email.message.EmailMessage:
    raw = live.sandbox.sent()[index]["raw"]
    return email.message_from_bytes(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)),
                                    policy=email.policy.default)


def _html(msg) -> str:
    return msg.get_body(("html",)).get_content()


def _get(live, api, mid) -> dict:
    return api.get(f"{live.url}/api/v1/messages/{mid}").json()


def test_opens_and_clicks_are_recorded_through_signed_links(live):
    api = live.user()
    sent = _send(live, api)
    html = _html(_delivered(live))
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1)
    pixel = re.search(r'src="([^"]+/t/o/[^"]+)"', html).group(1)
    time.sleep(0.5)
    assert requests.get(pixel, timeout=10, headers={"User-Agent": "Mozilla/5.0"}).content \
        .startswith(b"GIF89a")
    # A human click, far enough after sending not to look like a scanner.
    with live.db.write() as s:
        s.execute(update(Message).values(sent_at=utcnow() - dt.timedelta(minutes=5)))
    followed = requests.get(click, allow_redirects=False, timeout=10)
    assert followed.status_code == 302
    assert followed.headers["Location"] == "https://example.com/post?a=1&b=2"
    body = _get(live, api, sent["id"])
    assert body["opens"] == 1 and body["clicks"] == 1
    types = [e["type"] for e in body["events"]]
    assert "opened" in types and "clicked" in types
    tampered = click[:-3] + ("AAA" if not click.endswith("AAA") else "BBB")
    assert requests.get(tampered, allow_redirects=False, timeout=10).status_code == 404
    assert requests.get(pixel.replace("/t/o/", "/t/o/x"), timeout=10).status_code == 404


def test_scanners_and_image_proxies_are_flagged_not_counted(live):
    api = live.user()
    sent = _send(live, api)
    html = _html(_delivered(live))
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1)
    pixel = re.search(r'src="([^"]+/t/o/[^"]+)"', html).group(1)
    requests.get(pixel, timeout=10, headers={"User-Agent": "Mozilla/5.0 (via ggpht.com "
                                                           "GoogleImageProxy)"})
    requests.head(click, timeout=10)
    requests.get(click, allow_redirects=False, timeout=10)  # seconds after sending
    body = _get(live, api, sent["id"])
    assert body["opens"] == 0 and body["clicks"] == 0
    assert body["machine_opens"] == 1 and body["machine_clicks"] == 2
    types = [e["type"] for e in body["events"]]
    assert "opened" not in types and "machine_open" in types and "machine_click" in types


def test_one_click_unsubscribe_suppresses_the_next_message_but_not_a_receipt(live):
    api = live.user()
    _send(live, api)
    first = _delivered(live)
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.search(r"<(http[^>]+/u/[^>]+)>", first["List-Unsubscribe"]).group(1)
    assert "mailto:ada@example.com?subject=unsubscribe" in first["List-Unsubscribe"]
    assert link in _html(first) and "Unsubscribe" in _html(first)
    page = requests.get(link, timeout=10)
    assert page.status_code == 200 and "Stop receiving" in page.text  # a GET changes nothing
    assert requests.post(link, data={"List-Unsubscribe": "One-Click"},
                         timeout=10).status_code == 200
    contact = api.get(f"{live.url}/api/v1/contacts?email=reader@example.org").json()["items"]
    assert contact[0]["subscription"] == "unsubscribed"
    second = _send(live, api, subject="More news")
    assert second["status"] == "cancelled" and "unsubscribed" in second["error"]
    assert second["events"][-1]["type"] == "suppressed"
    receipt = _send(live, api, subject="Your receipt", transactional=True)
    assert receipt["status"] == "sent"
    last = _delivered(live)
    assert last["Subject"] == "Your receipt" and last["List-Unsubscribe"] is None
    assert "/t/c/" not in _html(last) and "/t/o/" not in _html(last)
    assert len(live.sandbox.sent()) == 2
    assert requests.post(link[:-2] + "xx", timeout=10).status_code == 404


class _Stock:
    def __init__(self):
        app = Flask("stock")

        @app.get("/stock")
        def stock():
            return jsonify({"items": [{"sku": "A1", "left": 3}]})
        self.server = ServerThread(app)


@pytest.fixture
def stock():
    server = _Stock()
    yield server.server.url
    server.server.stop()


AMP = """<!doctype html>
<html ⚡4email data-css-strict>
<head>
<meta charset="utf-8">
<script async src="https://cdn.ampproject.org/v0.js"></script>
<script async custom-element="amp-list" src="https://cdn.ampproject.org/v0/amp-list-0.1.js"></script>
<script async custom-template="amp-mustache" src="https://cdn.ampproject.org/v0/amp-mustache-0.2.js"></script>
<style amp4email-boilerplate>body{visibility:hidden}</style>
</head>
<body>
<amp-list width="auto" height="40" layout="fixed-height" src="{{ live_url('stock') }}">
  <template type="amp-mustache">{% raw %}{{sku}}: {{left}} left{% endraw %}</template>
</amp-list>
</body>
</html>
"""


def test_amp_live_data_answers_the_cors_handshake(serve, stock):
    live = serve(MAILRELEASE_CONTENT_HOSTS="127.0.0.1")
    api = live.user()
    resp = api.post(f"{live.url}/api/v1/templates", json={
        "name": "stock", "subject": "Stock", "html": "<p>Stock</p>", "amp": AMP,
        "sources": [{"name": "stock", "url": stock + "/stock", "fallback": {"items": []}}]})
    assert resp.status_code == 201, resp.text
    sent = _send(live, api, template_id=resp.json()["id"], subject=None, html=None)
    assert sent["status"] == "sent", sent
    msg = _delivered(live)
    assert [p.get_content_type() for p in msg.iter_parts()] == [
        "text/plain", "text/x-amp-html", "text/html"]
    amp = msg.get_body(("x-amp-html",)) or next(
        p for p in msg.iter_parts() if p.get_content_type() == "text/x-amp-html")
    amp_html = amp.get_content()
    assert "{{sku}}: {{left}} left" in amp_html
    live_url = re.search(r'src="([^"]+/amp/[^"]+)"', amp_html).group(1)
    ok = requests.get(live_url, headers={"AMP-Email-Sender": "ada@example.com"}, timeout=10)
    assert ok.status_code == 200 and ok.json() == {"items": [{"sku": "A1", "left": 3}]}
    assert ok.headers["AMP-Email-Allow-Sender"] == "ada@example.com"
    old = requests.get(live_url + "?__amp_source_origin=ada%40example.com",
                       headers={"Origin": "https://mail.google.com"}, timeout=10)
    assert old.headers["AMP-Access-Control-Allow-Source-Origin"] == "ada@example.com"
    assert old.headers["Access-Control-Allow-Origin"] == "https://mail.google.com"
    assert requests.get(live_url, headers={"AMP-Email-Sender": "eve@example.net"},
                        timeout=10).status_code == 403
    assert requests.get(live_url[:-4] + "abcd", timeout=10).status_code == 404
