"""Templates, contacts, send-time content and Gmail drafts, through the REST API."""
from __future__ import annotations

import base64
import email
import email.policy
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from flask import Flask, jsonify, redirect, request
from sqlalchemy import select, update

from scheduler.content.personalize import render_message
from scheduler.content.starters import starters
from scheduler.content.templates import check_parts
from scheduler.store.models import GmailAccount
from tests.helpers import ServerThread, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _wait_sent(live, api, mid, timeout=10) -> dict:
    return wait_for(lambda: (b := api.get(f"{live.url}/api/v1/messages/{mid}").json())
                    ["status"] in ("sent", "held", "failed") and b, timeout)


def _delivered(live, index=-1) -> email.message.EmailMessage:
    raw = live.sandbox.sent()[index]["raw"]
    return email.message_from_bytes(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)),
                                    policy=email.policy.default)


AMP_DOC = ('<!doctype html><html ⚡4email data-css-strict><head><meta charset="utf-8">'
           '<script async src="https://cdn.ampproject.org/v0.js"></script>'
           '<style amp4email-boilerplate>body{visibility:hidden}</style></head>'
           '<body>BODY</body></html>')


def _template(live, api, **fields) -> dict:
    body = {"name": "T", "subject": "Hi {{ first_name | default('there') }}",
            "html": "<p>Hello {{ first_name | default('there') }}</p>", **fields}
    resp = api.post(f"{live.url}/api/v1/templates", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


# -- templates ---------------------------------------------------------------------------

def test_a_syntax_error_is_refused_at_save_naming_the_part_and_line(live_no_worker):
    live = live_no_worker
    api = live.user()
    resp = api.post(f"{live.url}/api/v1/templates", json={
        "name": "broken", "subject": "S",
        "html": "<p>one</p>\n<p>two</p>\n{% if vip %}<p>three</p>\n"})
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["field"] == "html" and "line 3" in err["message"], err
    assert api.get(f"{live.url}/api/v1/templates").json()["items"] == []


def test_template_crud_is_scoped_to_the_team(live_no_worker):
    live = live_no_worker
    ada, bob = live.user(), live.user("bob@example.com")
    created = _template(live, ada, name="Welcome")
    url = f"{live.url}/api/v1/templates/{created['id']}"
    assert bob.get(url).status_code == 404
    assert bob.put(url, json={"subject": "x"}).status_code == 404
    assert ada.post(f"{live.url}/api/v1/templates", json={
        "name": "Welcome", "subject": "s", "html": "h"}).status_code == 409
    changed = ada.put(url, json={"subject": "New {{ first_name | default('you') }}"})
    assert changed.status_code == 200 and changed.json()["html"] == created["html"]
    assert ada.delete(url).status_code == 204
    assert ada.get(url).status_code == 404


@pytest.mark.parametrize("html", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
])
def test_templates_cannot_reach_python_internals(live_no_worker, html):
    live = live_no_worker
    api = live.user()
    tid = _template(live, api, name="evil", html=html)["id"]
    resp = api.post(f"{live.url}/api/v1/templates/{tid}/preview", json={"data": {}})
    assert resp.status_code == 422, resp.text
    resp = api.post(f"{live.url}/api/v1/messages", json={"to": "x@example.org",
                                                         "template_id": tid})
    assert resp.status_code == 422, resp.text


def test_a_message_from_a_template_and_a_contact_is_personalized_inlined_and_has_every_part(
        live):
    api = live.user()
    resp = api.post(f"{live.url}/api/v1/contacts", json={
        "email": "Zoe@Example.org", "name": "Zoë Ärger", "timezone": "Europe/Berlin",
        "attributes": {"first_name": "Zoë", "plan": "pro"}})
    assert resp.status_code == 201, resp.text
    tid = _template(live, api, name="Pro", subject="Grüße, {{ first_name }}!",
                    html="<style>p { color: #ff0000 }</style><p>Your plan: {{ plan }}</p>",
                    amp=AMP_DOC.replace("BODY", "<p>{{ plan }}</p>"))["id"]
    resp = api.post(f"{live.url}/api/v1/messages", json={
        "to": "Zoë Ärger <zoe@example.org>", "template_id": tid})
    assert resp.status_code == 201, resp.text
    body = _wait_sent(live, api, resp.json()["id"])
    assert body["status"] == "sent" and body["template_id"] == tid and body["contact_id"]
    msg = _delivered(live)
    assert msg["Subject"] == "Grüße, Zoë!"
    assert msg["To"].addresses[0].display_name == "Zoë Ärger"
    assert [p.get_content_type() for p in msg.iter_parts()] == [
        "text/plain", "text/x-amp-html", "text/html"]
    html = msg.get_body(("html",)).get_content()
    assert 'style="color: #ff0000' in html and "<style" not in html
    assert "Your plan: pro" in msg.get_body(("plain",)).get_content()


def test_fallbacks_fill_gaps_and_a_missing_value_holds_naming_it(live, api):
    tid = _template(live, api, html="<p>Hello {{ first_name | default('there') }}, "
                                    "code {{ coupon }}</p>")["id"]
    held = api.post(f"{live.url}/api/v1/messages", json={"to": "a@example.org",
                                                         "template_id": tid}).json()
    assert held["status"] == "held" and "coupon" in held["error"]
    sent = api.post(f"{live.url}/api/v1/messages", json={
        "to": "b@example.org", "template_id": tid, "data": {"coupon": "X1"}}).json()
    assert _wait_sent(live, api, sent["id"])["status"] == "sent"
    assert "Hello there, code X1" in _delivered(live).get_body(("plain",)).get_content()
    assert len(live.sandbox.sent()) == 1


def test_values_cannot_inject_headers(live, api):
    tid = _template(live, api, subject="Hello {{ name }}")["id"]
    resp = api.post(f"{live.url}/api/v1/messages", json={
        "to": "c@example.org", "template_id": tid,
        "data": {"name": "Eve\r\nBcc: victim@example.net"}})
    body = _wait_sent(live, api, resp.json()["id"])
    assert body["status"] == "sent"
    msg = _delivered(live)
    assert msg["Bcc"] is None and msg["Subject"] == "Hello Eve Bcc: victim@example.net"


def test_preview_shows_every_part_for_a_contact_or_names_what_is_missing(live_no_worker):
    live = live_no_worker
    api = live.user()
    api.post(f"{live.url}/api/v1/contacts", json={"email": "p@example.org",
                                                  "attributes": {"first_name": "Pat"}})
    tid = _template(live, api, text="Plain {{ first_name }}", html="<p>{{ first_name }} "
                    "{{ extra }}</p>")["id"]
    url = f"{live.url}/api/v1/templates/{tid}/preview"
    resp = api.post(url, json={"to": "p@example.org", "data": {"extra": "+"}})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["subject"] == "Hi Pat" and out["text"] == "Plain Pat" and "Pat +" in out["html"]
    assert "time zone" in out["best_hour"]["reason"]  # Pat has no zone to place an hour in
    missing = api.post(url, json={"to": "p@example.org"})
    assert missing.status_code == 422 and "extra" in missing.json()["error"]["message"]


# -- starter templates -------------------------------------------------------------------

def test_every_starter_renders_each_part_with_its_sample_data():
    found = starters()
    assert set(found) >= {"welcome", "abandoned-cart", "browse-abandonment",
                          "order-confirmation", "password-reset", "re-engagement",
                          "post-purchase-follow-up", "course-progress", "support-reply"}
    for key, t in found.items():
        check_parts(t["subject"], t["html"], t["text"], t["amp"])
        parts = render_message(t["subject"], t["html"], t["text"], t["sample_data"],
                               amp=t["amp"])
        assert parts.subject and parts.text.strip() and parts.html, key
        if t["amp"]:
            assert "⚡4email" in parts.amp and "amp4email-boilerplate" in parts.amp, key


def test_a_starter_loads_through_the_api(live_no_worker):
    live = live_no_worker
    api = live.user()
    listed = api.get(f"{live.url}/api/v1/starter-templates").json()["items"]
    assert len(listed) == 9
    resp = api.post(f"{live.url}/api/v1/templates", json={"starter": "abandoned-cart",
                                                          "name": "Our cart mail"})
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["name"] == "Our cart mail" and out["amp"] and out["origin"] == \
        "starter:abandoned-cart"
    assert api.post(f"{live.url}/api/v1/templates",
                    json={"starter": "nope"}).status_code == 404


# -- Gmail drafts ------------------------------------------------------------------------

DRAFT = (
    "MIME-Version: 1.0\r\nFrom: ada@example.com\r\n"
    "Subject: Hello {{first_name | default(\"friend\")}}\r\n"
    "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
    "Hi {{first_name | default(\"friend\")}}, your code is {{ code }}.\r\n"
    "--b\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n"
    "<div dir=\"ltr\">Hi {{first_name | default(&quot;friend&quot;)}}, your code is "
    "<b>{{ code }}</b>.</div>\r\n--b--\r\n")


def test_a_gmail_draft_becomes_a_template_with_its_placeholders(live, api):
    draft_id = live.sandbox.add_draft("ada@example.com", DRAFT)
    listed = api.get(f"{live.url}/api/v1/gmail/drafts")
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert item["id"] == draft_id and item["placeholders"] == ["code", "first_name"]
    resp = api.post(f"{live.url}/api/v1/templates/from-draft", json={"draft_id": draft_id})
    assert resp.status_code == 201, resp.text
    tpl = resp.json()
    assert tpl["name"] == 'Hello {{first_name | default("friend")}}'
    assert tpl["placeholders"] == ["code", "first_name"]
    assert 'default("friend")' in tpl["html"]
    sent = api.post(f"{live.url}/api/v1/messages", json={
        "to": "r@example.org", "template_id": tpl["id"], "data": {"code": "42"}}).json()
    assert _wait_sent(live, api, sent["id"])["status"] == "sent"
    msg = _delivered(live)
    assert msg["Subject"] == "Hello friend"
    assert "Hi friend, your code is <b>42</b>." in msg.get_body(("html",)).get_content()


def test_drafts_need_read_or_compose_access(serve):
    live = serve(MAILRELEASE_GMAIL_SCOPES="send-only")
    api = live.user()
    resp = api.get(f"{live.url}/api/v1/gmail/drafts")
    assert resp.status_code == 422 and "read or compose" in resp.json()["error"]["message"]


# -- contacts ----------------------------------------------------------------------------

def test_contacts_one_or_many_all_or_nothing(live_no_worker):
    live = live_no_worker
    api = live.user()
    one = api.post(f"{live.url}/api/v1/contacts", json={"email": "a@example.org"})
    assert one.status_code == 201 and one.json()["imported"] == 1
    bad = api.post(f"{live.url}/api/v1/contacts", json=[
        {"email": "b@example.org"}, {"email": "not an address"}])
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "contacts[1].email"
    again = api.post(f"{live.url}/api/v1/contacts", json=[
        {"email": "A@example.org", "name": "Ann", "timezone": "Asia/Tokyo"},
        {"email": "c@example.org", "timezone": "Mars/Olympus"}])
    assert again.status_code == 422 and "timezone" in again.json()["error"]["message"]
    emails = [c["email"] for c in api.get(f"{live.url}/api/v1/contacts").json()["items"]]
    assert emails == ["a@example.org"]
    ok = api.post(f"{live.url}/api/v1/contacts", json=[
        {"email": "A@example.org", "name": "Ann", "timezone": "Asia/Tokyo"}]).json()
    assert ok["updated"] == 1 and ok["items"][0]["timezone"] == "Asia/Tokyo"


MESSY = (
    "\ufeffEmail,Name,Time Zone,plan,notes\r\n"              # row 1: header, with a BOM
    "ann@example.org,Ann,Europe/Paris,pro,\"likes, commas\"\r\n"  # 2
    "not-an-address,Bob,,free,\r\n"                          # 3: rejected
    "cat@example.org,\"Cat \"\"the\"\" Great\",,free,\"two\nlines\"\r\n"  # 4: spans 2 lines
    "dan@example.org,Dan,Moon/Base,free,\r\n"                # 5: rejected (time zone)
    "\r\n"                                                   # 6: blank, skipped
    "ANN@example.org,,,team,\r\n"                            # 7: updates row 2
    "eve@example.org,Eve,,free,x,surplus\r\n"                # 8: rejected (extra field)
).encode("utf-8") + b"fay@example.org,F\xe9,,free,\r\n" + b"gus@example.org,Gus\r\n"
#                                                          9: rejected (not UTF-8)  10: short


def test_a_messy_csv_imports_and_names_every_rejected_row(live_no_worker):
    live = live_no_worker
    api = live.user()
    resp = api.post(f"{live.url}/api/v1/contacts/import", data=MESSY,
                    headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert [r["row"] for r in report["rejected"]] == [3, 5, 8, 9], report
    assert "email" in report["rejected"][0]["error"]
    assert "timezone" in report["rejected"][1]["error"]
    assert report["imported"] == 3 and report["updated"] == 0  # ann (twice), cat, gus
    by_email = {c["email"]: c for c in
                api.get(f"{live.url}/api/v1/contacts").json()["items"]}
    assert set(by_email) == {"ann@example.org", "cat@example.org", "gus@example.org"}
    assert by_email["ann@example.org"]["attributes"] == {"plan": "team",
                                                         "notes": "likes, commas"}
    assert by_email["ann@example.org"]["timezone"] == "Europe/Paris"
    assert by_email["cat@example.org"]["name"] == 'Cat "the" Great'
    assert by_email["cat@example.org"]["attributes"]["notes"] == "two\nlines"
    # Importing it again updates instead of duplicating.
    again = api.post(f"{live.url}/api/v1/contacts/import",
                     files={"file": ("c.csv", MESSY, "text/csv")}).json()
    assert again["imported"] == 0 and again["updated"] == 3


def test_a_csv_without_an_email_column_is_refused(live_no_worker):
    live = live_no_worker
    api = live.user()
    resp = api.post(f"{live.url}/api/v1/contacts/import", data=b"name,plan\nAnn,pro\n",
                    headers={"Content-Type": "text/csv"})
    assert resp.status_code == 422 and "row 1" in resp.json()["error"]["message"]


def test_import_streams_progress_then_the_report(live_no_worker):
    live = live_no_worker
    api = live.user()
    rows = "email,n\n" + "".join(f"u{i}@example.org,{i}\n" for i in range(2500))
    resp = api.post(f"{live.url}/api/v1/contacts/import", data=rows.encode(),
                    headers={"Content-Type": "text/csv", "Accept": "application/x-ndjson"})
    lines = [json.loads(x) for x in resp.text.splitlines()]
    assert [x["rows"] for x in lines[:-1]] == [1000, 2000, 2500]
    assert lines[-1] == {"imported": 2500, "updated": 0, "rejected": [], "merged": []}


def test_cli_imports_a_csv_with_a_progress_bar(live_no_worker, tmp_path):
    live = live_no_worker
    live.sign_in()
    path = tmp_path / "c.csv"
    path.write_text("email,name\nx@example.org,X\nbad,Y\n", encoding="utf-8")
    env = {"MAILRELEASE_DATABASE_URL": live.settings.database_url,
           "MAILRELEASE_INSTANCE_PATH": str(live.settings.instance_path),
           "MAILRELEASE_TOKEN_KEY": live.settings.token_key, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "app", "contacts", "import", str(path),
                           "--email", "ada@example.com"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["imported"] == 1 and [r["row"] for r in report["rejected"]] == [3]
    assert "importing" in done.stderr


# -- send-time content -------------------------------------------------------------------

class ContentServer:
    """A JSON service on loopback: fast, slow, failing, redirecting."""

    def __init__(self):
        app = Flask("content")
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

        def hit(name):
            with self.lock:
                self.hits[name] = self.hits.get(name, 0) + 1

        @app.get("/weather")
        def weather():
            hit("weather")
            return jsonify({"city": request.args.get("city"), "temp": 21})

        @app.get("/slow")
        def slow():
            hit("slow")
            time.sleep(3)
            return jsonify({"temp": 99})

        @app.get("/trickle")
        def trickle():
            def body():
                yield b"{"
                for _ in range(30):
                    time.sleep(0.1)
                    yield b" "
                yield b'"temp": 1}'
            return app.response_class(body(), mimetype="application/json")

        @app.get("/broken")
        def broken():
            hit("broken")
            return "no", 500

        @app.get("/away")
        def away():
            return redirect(f"http://localhost:{self.port}/weather")

        self.server = ServerThread(app)
        self.port = int(self.server.url.rsplit(":", 1)[1])
        self.url = self.server.url


@pytest.fixture
def content_server():
    server = ContentServer()
    yield server
    server.server.stop()


def _source(server, path, **extra):
    return {"name": "weather", "url": f"{server.url}{path}", **extra}


def _hosts(server, *names) -> str:
    """The allowlist entry for a test server on loopback: its exact host:port (a bare
    loopback host is not enough, see scheduler/content/outbound.py)."""
    port = server.url.rsplit(":", 1)[1]
    return ",".join(f"{name}:{port}" for name in names or ("127.0.0.1",))


def test_a_source_outside_the_allowed_hosts_is_refused_at_save(serve, content_server):
    live = serve(with_worker=False, MAILRELEASE_CONTENT_HOSTS="api.example.com")
    api = live.user()
    resp = api.post(f"{live.url}/api/v1/templates", json={
        "name": "w", "subject": "s", "html": "{{ weather.temp }}",
        "sources": [_source(content_server, "/weather")]})
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["field"] == "sources[0].url" and "127.0.0.1" in err["message"]
    templated_host = api.post(f"{live.url}/api/v1/templates", json={
        "name": "w", "subject": "s", "html": "x",
        "sources": [{"name": "w", "url": "https://{{ host }}/x"}]})
    assert templated_host.status_code == 422


def test_send_time_content_is_fetched_cached_or_replaced_by_its_fallback(
        serve, content_server):
    live = serve(MAILRELEASE_CONTENT_HOSTS=_hosts(content_server))
    api = live.user()
    fast = _template(live, api, name="fast", subject="{{ weather.temp }} in {{ weather.city }}",
                     sources=[_source(content_server, "/weather?city={{ city }}",
                                      cache_seconds=60)])
    slow = _template(live, api, name="slow", subject="{{ weather.temp }}",
                     sources=[_source(content_server, "/slow", timeout_ms=200,
                                      fallback={"temp": "n/a"})])
    ids = [api.post(f"{live.url}/api/v1/messages", json={
        "to": f"f{i}@example.org", "template_id": fast["id"],
        "data": {"city": "Zürich & Co"}}).json()["id"] for i in range(2)]
    for mid in ids:
        assert _wait_sent(live, api, mid)["status"] == "sent"
    subjects = sorted(m["subject"] for m in live.sandbox.sent())
    assert subjects == ["21 in Zürich & Co"] * 2
    assert content_server.hits["weather"] == 1  # the second came from the cache
    metrics = requests.get(f"{live.url}/metrics", timeout=10).text
    assert 'mailrelease_content_fetches_total{outcome="hit"}' in metrics

    started = time.monotonic()
    values, report = live.worker.releaser.content.fetch(slow["sources"], {})
    assert report[0]["outcome"] == "fallback" and values == {"weather": {"temp": "n/a"}}
    assert time.monotonic() - started < 1.5  # the source answers after 3 s
    started = time.monotonic()
    values, report = live.worker.releaser.content.fetch(
        [_source(content_server, "/trickle", timeout_ms=300, fallback={"temp": "fb"})], {})
    assert report[0]["outcome"] == "fallback" and values["weather"] == {"temp": "fb"}
    assert time.monotonic() - started < 1.0  # the body would take 3 s to arrive
    mid = api.post(f"{live.url}/api/v1/messages", json={
        "to": "s@example.org", "template_id": slow["id"]}).json()["id"]
    assert _wait_sent(live, api, mid)["status"] == "sent"
    assert live.sandbox.sent()[-1]["subject"] == "n/a"


def test_a_failing_source_without_fallback_holds_and_redirects_stay_on_the_host(
        serve, content_server):
    live = serve(MAILRELEASE_CONTENT_HOSTS=_hosts(content_server,
                                                              "127.0.0.1", "localhost"))
    api = live.user()
    broken = _template(live, api, name="broken", subject="{{ weather.temp }}",
                       sources=[_source(content_server, "/broken")])
    away = _template(live, api, name="away", subject="{{ weather.temp }}",
                     sources=[_source(content_server, "/away", fallback={"temp": "fb"})])
    held = api.post(f"{live.url}/api/v1/messages", json={"to": "h@example.org",
                                                         "template_id": broken["id"]})
    body = _wait_sent(live, api, held.json()["id"])
    assert body["status"] == "held" and "weather" in body["error"] and "HTTP 500" in \
        body["error"]
    assert content_server.hits["broken"] == 2  # one retry within the budget
    moved = api.post(f"{live.url}/api/v1/messages", json={"to": "r@example.org",
                                                          "template_id": away["id"]})
    assert _wait_sent(live, api, moved.json()["id"])["status"] == "sent"
    assert live.sandbox.sent()[-1]["subject"] == "fb"
    assert "weather" not in content_server.hits


def test_reading_drafts_keeps_a_refreshed_token_and_writes_nothing_otherwise(live_no_worker):
    live = live_no_worker
    api = live.user()
    live.sandbox.add_draft("ada@example.com", DRAFT)

    def blob():
        with live.db.read() as s:
            return s.scalar(select(GmailAccount.token_blob))
    first = blob()
    assert api.get(f"{live.url}/api/v1/gmail/drafts").status_code == 200
    assert blob() == first  # the token was fresh: nothing to store
    with live.db.write() as s:  # the stored access token has expired: google-auth refreshes
        s.execute(update(GmailAccount).values(token_blob=live.wiring.cipher.encrypt(
            {**live.wiring.cipher.decrypt(first), "expiry": "2000-01-01T00:00:00"})))
    expired = blob()
    assert api.get(f"{live.url}/api/v1/gmail/drafts").status_code == 200
    assert blob() != expired
    assert live.wiring.cipher.decrypt(blob())["token"] in live.sandbox.state.access_tokens
