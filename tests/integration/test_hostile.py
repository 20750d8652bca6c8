"""Hostile input over real HTTP: each request gets a clear 4xx naming what is wrong, and
changes nothing (the requests that answered 500 before, and their neighbours)."""
from __future__ import annotations

import re

import requests

DEEP = b'{"to": "x@example.org", "data": ' + b"[" * 1000 + b"]" * 1000 + b"}"


def _raw(api, url, body: bytes):
    return api.post(url, data=body, headers={"Content-Type": "application/json"})


def _count(live, api) -> int:
    return len(api.get(f"{live.url}/api/v1/messages?limit=500").json()["items"])


def test_hostile_json_bodies_are_refused_with_a_4xx(live_no_worker):
    live = live_no_worker
    api = live.user()
    base = f"{live.url}/api/v1"
    for path in ("/messages", "/contacts", "/events", "/templates", "/campaigns", "/rules"):
        resp = _raw(api, base + path, DEEP)
        assert resp.status_code == 400, (path, resp.status_code, resp.text[:200])
        assert "deeper" in resp.json()["error"]["message"]
    cases = [
        ("/messages", b'{"to": "x@example.org", "subject": "\\ud800", "html": "h"}', 422,
         "subject"),
        ("/messages", b'{"to": "x@example.org", "subject": "a\\u0000b", "html": "h"}', 422,
         "subject"),
        ("/messages", b'{"to": "x@example.org", "subject": "s", "html": "h", '
                      b'"delay_seconds": NaN}', 400, None),
        ("/messages", b'{"to": "x@example.org", "subject": "s", "html": "h", '
                      b'"send_at": "9999-12-31T23:30-01:00"}', 422, "send_at"),
        ("/messages", b'{"to": "a@example.org, b@example.org", "subject": "s", "html": "h"}',
         422, "to"),
        ("/contacts", b'{"email": "c@example.org", "name": "x\\ud800"}', 422, "name"),
        ("/events", b'{"id": "e1", "name": "n", "email": "e@example.org", '
                    b'"data": {"k\\u0000": 1}}', 422, "data.k\x00"),
        ("/rules", b'{"seed": {}}', 422, "seed"),
        ("/rules", b'{"event": "e", "template_id": 1, "frequency_cap": {"max": 1, '
                   b'"seconds": 1e300}}', None, None),
    ]
    for path, body, status, field in cases:
        resp = _raw(api, base + path, body)
        if status is None:  # the template may not exist: any 4xx but never a 500
            assert 400 <= resp.status_code < 500, (path, body, resp.text[:200])
            continue
        assert resp.status_code == status, (path, body, resp.status_code, resp.text[:200])
        if field:
            assert field in (resp.json()["error"].get("field") or ""), (path, resp.text)
    assert _count(live, api) == 0


def test_a_frequency_cap_beyond_a_year_is_refused(live_no_worker):
    live = live_no_worker
    api = live.user()
    template = api.post(f"{live.url}/api/v1/templates", json={
        "name": "t", "subject": "S", "html": "h"}).json()
    resp = api.post(f"{live.url}/api/v1/rules", json={
        "event": "e", "template_id": template["id"],
        "frequency_cap": {"max": 1, "seconds": 1e300}})
    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "frequency_cap.seconds"
    assert api.get(f"{live.url}/api/v1/rules").json()["items"] == []


def test_a_csv_name_with_a_line_break_is_a_rejected_row(live_no_worker):
    live = live_no_worker
    api = live.user()
    report = api.post(f"{live.url}/api/v1/contacts/import",
                      data=b'email,name\na@example.org,Ann\nb@example.org,"Bob\r\nBcc: x"\n',
                      headers={"Content-Type": "text/csv"}).json()
    assert report["imported"] == 1 and report["rejected"][0]["row"] == 3
    assert "one line" in report["rejected"][0]["error"]


def test_ids_that_are_not_ids_are_404_not_database_errors(live_no_worker):
    live = live_no_worker
    api = live.user()
    for path in ("/templates/abc", "/templates/99999999999999999999", "/contacts/-1",
                 "/campaigns/1e3", "/rules/0"):
        resp = api.get(f"{live.url}/api/v1{path}")
        assert resp.status_code in (404, 405), (path, resp.status_code, resp.text[:200])
    resp = api.post(f"{live.url}/api/v1/messages", json={
        "to": "x@example.org", "template_id": 10 ** 30})
    # Not an id at all (ids are 32-bit): invalid, naming the field, before any lookup.
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "template_id"


def test_a_wrong_method_is_a_405_that_says_what_is_allowed(live_no_worker):
    live = live_no_worker
    api = live.user()
    resp = api.put(f"{live.url}/api/v1/messages")
    assert resp.status_code == 405 and set(resp.headers["Allow"].split(", ")) >= {"GET",
                                                                                 "POST"}
    page = requests.delete(f"{live.url}/compose", timeout=10)
    assert page.status_code == 405 and "POST" in page.headers["Allow"]


def _form(browser, url) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', browser.get(url).text).group(1)


def test_web_forms_with_nonsense_numbers_and_ids_answer_a_page_not_a_500(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    token = _form(browser, f"{live.url}/compose")
    for data in ({"when": "in", "in_minutes": "nan"}, {"when": "in", "in_minutes": "1e400"},
                 {"audience": "contacts", "template_id": "abc"},
                 {"template_id": "abc", "to": "x@example.org"}):
        resp = browser.post(f"{live.url}/compose", data={
            "csrf_token": token, "to": "x@example.org", "subject": "S", "html": "h", **data})
        assert 400 <= resp.status_code < 500, (data, resp.status_code)
    settings = browser.post(f"{live.url}/settings", data={
        "csrf_token": _form(browser, f"{live.url}/settings"), "action": "revoke_token",
        "token_id": "abc"})
    assert settings.status_code == 404
    rules = browser.post(f"{live.url}/rules", data={
        "csrf_token": _form(browser, f"{live.url}/rules"), "event": "e",
        "delay_minutes": "nan"})
    assert rules.status_code < 500


def test_next_never_leaves_the_site(live_no_worker):
    live = live_no_worker
    api = live.user()
    mid = api.post(f"{live.url}/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "h", "delay_seconds": 3600}).json()["id"]
    browser = live.browser()
    for target in ("/\t/evil.example", "/\\evil.example", "//evil.example",
                   "https://evil.example/"):
        resp = browser.post(f"{live.url}/messages/{mid}/send-now", allow_redirects=False,
                            data={"csrf_token": _form(browser, f"{live.url}/"),
                                  "next": target})
        assert resp.status_code == 302
        assert resp.headers["Location"].startswith(("/messages/", f"{live.url}/messages/")), \
            (target, resp.headers["Location"])


def test_failed_token_and_signature_checks_are_throttled_per_client(live_no_worker):
    from app.throttle import MAX_FAILURES
    live = live_no_worker
    good = live.user()
    bad = requests.Session()
    bad.headers["Authorization"] = "Bearer mr_guess"
    answers = [bad.get(f"{live.url}/api/v1/messages").status_code
               for _ in range(MAX_FAILURES + 1)]
    assert answers[:MAX_FAILURES] == [401] * MAX_FAILURES and answers[-1] == 429
    throttled = bad.get(f"{live.url}/api/v1/messages")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    # Forged signatures count the same way (the same client address).
    forged = requests.post(f"{live.url}/api/v1/events", data=b"{}", headers={
        "Content-Type": "application/json", "X-Mailrelease-Signature": "t=1,v1=00"})
    assert forged.status_code == 429
    assert good.get(f"{live.url}/api/v1/messages").status_code == 429  # per address


def test_a_webhook_names_its_team_and_only_that_secret_is_tried(live_no_worker):
    from app.api.automation import MAX_UNNAMED
    from scheduler.automation.events import sign
    live = live_no_worker
    secrets = {}
    for n in range(MAX_UNNAMED + 1):
        api = live.user(f"u{n}@example.com")
        body = api.get(f"{live.url}/api/v1/webhook-secret").json()
        secrets[body["team"]] = body["secret"]
    team, secret = next(iter(secrets.items()))
    raw = b'{"id": "w1", "name": "signup", "email": "n@example.org"}'
    headers = {"Content-Type": "application/json",
               "X-Mailrelease-Signature": sign(secret, raw)}
    unnamed = requests.post(f"{live.url}/api/v1/events", data=raw, headers=headers)
    assert unnamed.status_code == 401 and "name your team" in unnamed.text
    named = requests.post(f"{live.url}/api/v1/events?team={team}", data=raw, headers=headers)
    assert named.status_code == 202, named.text
    in_header = requests.post(f"{live.url}/api/v1/events", data=raw, headers={
        **headers, "X-Mailrelease-Signature": sign(secret, raw) + f",team={team}"})
    assert in_header.status_code == 202 and in_header.json() == named.json()
