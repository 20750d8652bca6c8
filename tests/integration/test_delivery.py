"""After a message leaves: opens, clicks, unsubscribes, AMP live data, bounces and replies."""
from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import re

import pytest
import requests
from flask import Flask, jsonify
from sqlalchemy import update

from scheduler.store.db import utcnow
from scheduler.store.models import Message
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


def test_opens_and_clicks_are_recorded_through_signed_links(live, api):
    sent = _send(live, api)
    html = _html(_delivered(live))
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1)
    pixel = re.search(r'(?:src|background)="([^"]+/t/o/[^"]+)"', html).group(1)
    # A person, far enough after sending not to look like a proxy or a link scanner.
    with live.db.write() as s:
        s.execute(update(Message).values(sent_at=utcnow() - dt.timedelta(minutes=5)))
    assert requests.get(pixel, timeout=10, headers={"User-Agent": "Mozilla/5.0"}).content \
        .startswith(b"GIF89a")
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


def test_scanners_and_image_proxies_are_flagged_not_counted(live, api):
    sent = _send(live, api)
    html = _html(_delivered(live))
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1)
    pixel = re.search(r'(?:src|background)="([^"]+/t/o/[^"]+)"', html).group(1)
    requests.get(pixel, timeout=10, headers={"User-Agent": "Mozilla/5.0 (via ggpht.com "
                                                           "GoogleImageProxy)"})
    requests.head(click, timeout=10)
    requests.get(click, allow_redirects=False, timeout=10)  # seconds after sending
    body = _get(live, api, sent["id"])
    assert body["opens"] == 0 and body["clicks"] == 0
    assert body["machine_opens"] == 1 and body["machine_clicks"] == 2
    types = [e["type"] for e in body["events"]]
    assert "opened" not in types and "machine_open" in types and "machine_click" in types


def test_one_click_unsubscribe_suppresses_the_next_message_but_not_a_receipt(live, api):
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
    live = serve(MAILRELEASE_CONTENT_HOSTS="127.0.0.1:" + stock.rsplit(":", 1)[1])
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


def _bounce(original: str, status: str = "5.1.1") -> str:
    return (
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
        "To: ada@example.com\r\nSubject: Delivery Status Notification (Failure)\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nAddress not found.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; googlemail.com\r\n\r\n"
        "Final-Recipient: rfc822; reader@example.org\r\nAction: failed\r\n"
        f"Status: {status}\r\nDiagnostic-Code: smtp; 550 {status} The email account "
        "does not exist.\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original}\r\nSubject: News\r\n\r\n--b--\r\n")


def _reply(original: str, body: str = "Thanks!", **headers) -> str:
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return (f"From: Reader <reader@example.org>\r\nTo: ada@example.com\r\n"
            f"Subject: Re: News\r\nIn-Reply-To: {original}\r\nReferences: {original}\r\n"
            f"{extra}\r\n{body}\r\n")


def test_a_bounce_and_a_reply_in_the_mailbox_are_read_back(live, api):
    bounced = _send(live, api, to="gone@example.org")
    replied = _send(live, api)
    auto = _send(live, api, to="away@example.org")
    live.sandbox.deliver("ada@example.com", _bounce(bounced["message_id_header"]))
    live.sandbox.deliver("ada@example.com", _reply(replied["message_id_header"]))
    live.sandbox.deliver("ada@example.com", _reply(
        auto["message_id_header"], "I am away until Monday.",
        Auto_Submitted="auto-replied").replace("reader@example.org", "away@example.org"))
    assert live.worker.sync.sync_account(1, force=True) == 3
    b = _get(live, api, bounced["id"])
    event = next(e for e in b["events"] if e["type"] == "bounced")
    assert event["detail"]["status"] == "5.1.1" and event["detail"]["hard"] is True
    contact = api.get(f"{live.url}/api/v1/contacts?email=gone@example.org").json()["items"]
    assert contact[0]["subscription"] == "bounced"
    assert "replied" in [e["type"] for e in _get(live, api, replied["id"])["events"]]
    auto_types = [e["type"] for e in _get(live, api, auto["id"])["events"]]
    assert "auto_replied" in auto_types and "replied" not in auto_types
    # The next round reads only what is new (history), and the bounced address is skipped.
    assert live.worker.sync.sync_account(1, force=True) == 0
    again = _send(live, api, to="gone@example.org", subject="Again")
    assert again["status"] == "cancelled" and "bounced" in again["error"]


def test_sync_falls_back_to_search_when_history_expired(live, api):
    sent = _send(live, api)
    assert live.worker.sync.sync_account(1, force=True) == 0  # remembers the history id
    live.sandbox.deliver("ada@example.com", _reply(sent["message_id_header"]))
    requests.post(f"{live.sandbox.url}/sandbox/api/settings", json={"expire_history": True},
                  timeout=10)
    assert live.worker.sync.sync_account(1, force=True) == 1
    assert "replied" in [e["type"] for e in _get(live, api, sent["id"])["events"]]


def test_an_unsubscribe_mail_suppresses_its_sender(live, api):
    live.sandbox.deliver("ada@example.com", "From: reader@example.org\r\nTo: ada@example.com"
                                            "\r\nSubject: unsubscribe\r\n\r\n\r\n")
    live.worker.sync.sync_account(1, force=True)
    sent = _send(live, api)
    assert sent["status"] == "cancelled" and "unsubscribed" in sent["error"]


def test_tracking_off_for_the_team_leaves_links_alone_but_keeps_unsubscribe(live, api):
    resp = api.patch(f"{live.url}/api/v1/team", json={"tracking": False})
    assert resp.status_code == 200 and resp.json()["tracking"] is False
    sent = _send(live, api)
    html = _html(_delivered(live))
    assert sent["tracking"] is False
    assert 'href="https://example.com/post?a=1&amp;b=2"' in html and "/t/o/" not in html
    assert _delivered(live)["List-Unsubscribe"]
    metrics = requests.get(f"{live.url}/metrics", timeout=10).text
    assert 'mailrelease_releases_total{outcome="sent"}' in metrics


def test_campaign_and_rule_mail_name_their_list_and_rule_mail_says_it_is_automatic(live,
                                                                                   api):
    """List-Id (RFC 2919) on campaign and rule mail, Auto-Submitted (RFC 3834) on what a
    rule sent, and the unsubscribe mailto at the From address (an alias stays an alias)."""
    requests.post(f"{live.sandbox.url}/sandbox/api/send-as", json={
        "owner": "ada@example.com", "email": "help@example.com", "name": "Help"}, timeout=10)
    live.sign_in()  # aliases are read at sign-in
    base = f"{live.url}/api/v1"
    tid = api.post(f"{base}/templates", json={"name": "t", "subject": "Hi",
                                              "html": "<p>Hello</p>"}).json()["id"]
    rule = api.post(f"{base}/rules", json={"event": "signup", "template_id": tid}).json()
    assert api.post(f"{base}/events", json={"id": "e1", "name": "signup",
                                            "email": "new@example.org"}).status_code == 202
    api.post(f"{base}/contacts", json={"email": "c@example.org"})
    campaign = api.post(f"{base}/campaigns", json={
        "template_id": tid, "audience": {"contact_ids": [
            c["id"] for c in api.get(f"{base}/contacts?email=c@example.org").json()["items"]]},
        "from": "help@example.com"}).json()
    _send(live, api)
    wait_for(lambda: live.sandbox.count() >= 3, 20)
    by_to = {}
    for index in range(3):
        message = _delivered(live, index)
        by_to[message["To"].addresses[0].addr_spec] = message
    ruled, mailed, direct = by_to["new@example.org"], by_to["c@example.org"], by_to[
        "reader@example.org"]
    assert ruled["List-Id"] == f"<rule-{rule['id']}.team-1.example.com>"
    assert ruled["Auto-Submitted"] == "auto-generated"
    assert mailed["List-Id"] == f"<campaign-{campaign['id']}.team-1.example.com>"
    assert mailed["Auto-Submitted"] is None and direct["List-Id"] is None
    assert str(mailed["From"].addresses[0].addr_spec) == "help@example.com"
    assert "mailto:help@example.com?subject=unsubscribe" in mailed["List-Unsubscribe"]
    assert "mailto:ada@example.com?subject=unsubscribe" in direct["List-Unsubscribe"]


def test_reply_to_cc_and_bcc_from_the_message_or_its_template_reach_gmail(live, api):
    base = f"{live.url}/api/v1"
    refused = api.post(f"{base}/messages", json={
        "to": "a@example.org", "subject": "s", "html": "h",
        "cc": ["ok@example.org", "not an address"]})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "cc[1]"
    too_many = api.post(f"{base}/messages", json={
        "to": "a@example.org", "subject": "s", "html": "h",
        "bcc": [f"b{n}@example.org" for n in range(21)]})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "bcc"
    tid = api.post(f"{base}/templates", json={
        "name": "t", "subject": "Hi", "html": "<p>Hello</p>",
        "reply_to": "Help Desk <desk@example.com>", "cc": ["Ånne Støre <anne@example.org>"]}
        ).json()["id"]
    assert api.get(f"{base}/templates/{tid}").json()["cc"] == ["Ånne Støre <anne@example.org>"]
    own = _send(live, api, reply_to="me@example.org", cc=["c1@example.org", "C Two "
                                                          "<c2@example.org>"],
                bcc=["secret@example.org"])
    assert own["cc"] == ["c1@example.org", "C Two <c2@example.org>"]
    assert own["bcc"] == ["secret@example.org"] and own["reply_to"] == "me@example.org"
    mail = _delivered(live)
    assert [a.addr_spec for a in mail["Cc"].addresses] == ["c1@example.org", "c2@example.org"]
    assert mail["Reply-To"].addresses[0].addr_spec == "me@example.org"
    assert mail["Bcc"].addresses[0].addr_spec == "secret@example.org"
    made = api.post(f"{base}/messages", json={"to": "reader@example.org",
                                              "template_id": tid}).json()
    wait_for(lambda: api.get(f"{base}/messages/{made['id']}").json()["status"] == "sent")
    mail = _delivered(live)
    assert mail["Reply-To"].addresses[0].addr_spec == "desk@example.com"
    assert mail["Cc"].addresses[0].display_name == "Ånne Støre"
    # A message's own list replaces the template's, and an empty one means none.
    none = api.post(f"{base}/messages", json={"to": "reader@example.org", "template_id": tid,
                                              "cc": []}).json()
    assert none["cc"] == [] and none["reply_to"] == "Help Desk <desk@example.com>"


def test_a_campaign_s_reply_to_and_copies_go_on_each_of_its_messages(live, api):
    base = f"{live.url}/api/v1"
    tid = api.post(f"{base}/templates", json={"name": "t", "subject": "Hi",
                                              "html": "<p>Hello</p>",
                                              "cc": ["tpl@example.org"]}).json()["id"]
    for n in range(2):
        api.post(f"{base}/contacts", json={"email": f"c{n}@example.org"})
    campaign = api.post(f"{base}/campaigns", json={
        "template_id": tid, "reply_to": "Sales <sales@example.com>",
        "bcc": ["crm@example.com"]}).json()
    assert campaign["reply_to"] == "Sales <sales@example.com>"
    assert campaign["bcc"] == ["crm@example.com"] and campaign["cc"] == []
    wait_for(lambda: live.sandbox.count() >= 2, 20)
    for index in range(2):
        mail = _delivered(live, index)
        assert mail["Reply-To"].addresses[0].addr_spec == "sales@example.com"
        assert mail["Bcc"].addresses[0].addr_spec == "crm@example.com"
        assert mail["Cc"].addresses[0].addr_spec == "tpl@example.org"  # the template's


def test_a_message_gmail_would_clip_is_warned_about_and_keeps_its_links_in_view(live, api):
    base = f"{live.url}/api/v1"
    rows = "".join(f'<p>Product {n} <a href="https://shop.example.com/p/{n}">buy</a></p>'
                   for n in range(1500))
    html = f"<html><body>{rows}</body></html>"
    preview = api.post(f"{base}/templates/preview", json={"subject": "s", "html": html}).json()
    assert any("Gmail clips" in w for w in preview["warnings"])
    small = api.post(f"{base}/templates/preview", json={"subject": "s", "html": "<p>h</p>"})
    assert small.json()["warnings"] == []
    relative = api.post(f"{base}/templates/preview", json={
        "subject": "s", "html": '<p><a href="/account">yours</a></p>'}).json()
    assert relative["warnings"] == ["1 link not absolute (a link in mail needs https://…): "
                                    "'/account'"]
    sent = _send(live, api, html=html)
    assert "Gmail clips" in sent["events"][0]["detail"]["warning"]
    assert "clipped" in next(e for e in sent["events"] if e["type"] == "sent")["detail"][
        "warning"]
    shown = _html(_delivered(live)).encode()[:102_000].decode(errors="ignore")
    assert "/t/o/" in shown and "Unsubscribe" in shown


def test_an_amp_part_that_fails_with_the_recipient_s_data_goes_out_without_it(live, api):
    """Checked at save with stand-ins, and again at release as rendered: an http: image
    from the data would make Gmail refuse the AMP part, so the mail goes without it."""
    amp = ('<!doctype html><html ⚡4email data-css-strict><head><meta charset="utf-8">'
           '<script async src="https://cdn.ampproject.org/v0.js"></script>'
           '<style amp4email-boilerplate>body{visibility:hidden}</style></head><body>'
           '<amp-img src="{{ image }}" width="10" height="10" layout="fixed" alt="">'
           '</amp-img></body></html>')
    tid = api.post(f"{live.url}/api/v1/templates", json={
        "name": "amp", "subject": "s", "html": "<p>h</p>", "amp": amp})
    assert tid.status_code == 201, tid.text
    sent = _send(live, api, template_id=tid.json()["id"], subject=None, html=None,
                 data={"image": "http://cdn.example/p.png"})
    assert sent["status"] == "sent", sent
    entry = next(e for e in sent["events"] if e["type"] == "sent")
    assert "AMP part was left out" in entry["detail"]["warning"]
    assert "https" in entry["detail"]["warning"]
    mail = _delivered(live)
    assert [p.get_content_type() for p in mail.walk() if not p.is_multipart()] == [
        "text/plain", "text/html"]


def test_links_in_sent_mail_go_to_the_tracking_domain_and_the_app_answers_them(serve):
    """MAILRELEASE_TRACKING_URL: a domain of the sender's own (a CNAME to this app) for
    every link in sent mail, instead of the public URL."""
    live = serve(MAILRELEASE_TRACKING_URL="https://t.sender.example/")
    api = live.user()
    sent = _send(live, api)
    mail = _delivered(live)
    html = _html(mail)
    pixel = re.search(r'(?:src|background)="(https://t\.sender\.example/t/o/[^"]+)"', html).group(1)
    assert re.search(r'href="https://t\.sender\.example/t/c/', html)
    assert "<https://t.sender.example/u/" in mail["List-Unsubscribe"]
    assert live.url not in html
    # The same app answers under that name: here, reached at its own address.
    with live.db.write() as s:
        s.execute(update(Message).values(sent_at=utcnow() - dt.timedelta(minutes=5)))
    here = pixel.replace("https://t.sender.example", live.url)
    assert requests.get(here, headers={"User-Agent": "Mozilla/5.0"}, timeout=10).ok
    assert api.get(f"{live.url}/api/v1/messages/{sent['id']}").json()["opens"] == 1
