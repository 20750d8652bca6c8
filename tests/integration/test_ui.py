"""Server-rendered pages over real HTTP: CSRF, compose and schedule, the queue, cancel."""
from __future__ import annotations

import json
import re

import requests

from tests.helpers import wait_for


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_compose_schedule_see_in_queue_and_cancel(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    form_page = browser.get(live.url + "/compose").text
    resp = browser.post(live.url + "/compose", data={
        "csrf_token": _csrf(form_page), "from": "ada@example.com",
        "to": "Grace <grace@example.org>", "subject": "Hi {{ first_name }}",
        "html": "<p>Hello {{ first_name }}</p>", "data": '{"first_name": "Grace"}',
        "when": "at", "send_at_local": "2031-03-04T09:30", "timezone": "Asia/Tokyo"})
    assert resp.status_code == 200 and "Message scheduled." in resp.text
    assert "2031-03-04T00:30:00+00:00" in resp.text  # 09:30 in Tokyo, stored as UTC
    queue = browser.get(live.url + "/").text
    assert "Hi Grace" in queue and "scheduled" in queue
    mid = re.search(r'/messages/([0-9a-f]{32})"', queue).group(1)
    cancelled = browser.post(f"{live.url}/messages/{mid}/cancel",
                             data={"csrf_token": _csrf(queue), "next": "https://evil.example/"})
    assert cancelled.url.startswith(live.url)  # never an open redirect
    assert "Message cancelled." in cancelled.text
    assert "cancelled" in browser.get(f"{live.url}/messages/{mid}").text


def test_compose_takes_cc_bcc_and_reply_to_and_names_a_wrong_copy(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    page = browser.get(live.url + "/compose").text
    assert 'name="cc"' in page and 'name="reply_to"' in page
    form = {"csrf_token": _csrf(page), "from": "ada@example.com", "to": "g@example.org",
            "subject": "Hi", "html": "<p>Hello</p>", "data": "{}", "when": "now",
            "timezone": "UTC", "cc": "c1@example.org, \"Two, C\" <c2@example.org>",
            "bcc": "b@example.org", "reply_to": "Desk <desk@example.com>"}
    refused = browser.post(live.url + "/compose", data={**form, "cc": "c1@example.org, nope"})
    assert refused.status_code == 422 and "is not an email address: &#39;nope&#39;" in refused.text
    assert re.search(r'<input id="cc" name="cc"[^>]*aria-invalid=true', refused.text)
    assert browser.post(live.url + "/compose", data=form).status_code == 200
    api = live.user()
    message = api.get(f"{live.url}/api/v1/messages").json()["items"][0]
    assert message["cc"] == ["c1@example.org", '"Two, C" <c2@example.org>']
    assert message["bcc"] == ["b@example.org"]
    assert message["reply_to"] == "Desk <desk@example.com>"


def test_forms_without_csrf_token_are_refused(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    resp = browser.post(live.url + "/compose", data={
        "to": "g@example.org", "subject": "s", "html": "h", "when": "now"})
    assert resp.status_code == 400
    assert browser.post(live.url + "/auth/logout").status_code == 400


def test_compose_errors_name_the_field_and_keep_the_input(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    page = browser.get(live.url + "/compose").text
    resp = browser.post(live.url + "/compose", data={
        "csrf_token": _csrf(page), "to": "not-an-address", "subject": "Kept subject",
        "html": "<p>x</p>", "data": "{}", "when": "now", "timezone": "UTC"})
    assert resp.status_code == 422
    assert "to is not an email address" in resp.text
    assert 'value="Kept subject"' in resp.text
    assert re.search(r'<textarea id="to" name="to"[^>]*aria-invalid=true', resp.text)


def test_pages_need_a_session_and_other_teams_messages_are_404(live_no_worker):
    live = live_no_worker
    ada_api = live.user("ada@example.com")
    mid = ada_api.post(live.url + "/api/v1/messages", json={
        "to": "g@example.org", "subject": "s", "html": "h", "delay_seconds": 600}).json()["id"]
    anonymous = requests.get(f"{live.url}/messages/{mid}", timeout=10)
    assert "Sign in with Google first." in anonymous.text
    bob = requests.Session()
    live.sign_in("bob@example.com", session=bob)
    assert bob.get(f"{live.url}/messages/{mid}").status_code == 404


def test_session_cookie_is_httponly_and_lax(live_no_worker):
    browser = requests.Session()
    resp = live_no_worker.sign_in(session=browser)
    cookie_headers = [r.headers.get("Set-Cookie", "") for r in resp.history + [resp]]
    session_cookie = next(h for h in cookie_headers if h.startswith("session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie


def test_healthz_reports_database_and_worker(live):
    body = wait_for(lambda: (b := requests.get(live.url + "/healthz", timeout=5).json())
                    ["scheduler"]["workers"] and b, 5)
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["scheduler"]["in_process"] is True and body["scheduler"]["running"] is True


def _up(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_templates_pages_add_a_starter_edit_and_preview_for_a_contact(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    api = live.api(live.token())
    api.post(f"{live.url}/api/v1/contacts", json={"email": "pat@example.org",
                                                  "attributes": {"first_name": "Pat"}})
    page = browser.get(live.url + "/templates").text
    assert "Abandoned cart" in page and "Support reply" in page
    added = browser.post(live.url + "/templates/starter",
                         data={"csrf_token": _csrf(page), "key": "welcome"})
    assert added.status_code == 200 and "Added the starter" in added.text
    edit_url = added.url
    # The editor offers the team's contacts and starts its preview with the first one.
    assert '<option value="pat@example.org">' in added.text
    assert re.search(r'id="preview_to"[^>]*value="pat@example.org"', added.text)
    form = {"csrf_token": _csrf(added.text), "name": "Welcome",
            "subject": "Welcome {{ first_name }}", "html": "<style>p{color:red}</style>"
            "<p>Hi {{ first_name }}</p>", "text": "", "amp": "", "sources": "[]",
            "preview_to": "pat@example.org", "preview_data": "{}", "action": "preview"}
    preview = browser.post(edit_url, data=form)
    assert preview.status_code == 200
    assert "Welcome Pat" in preview.text and "color: red" in preview.text
    broken = browser.post(edit_url, data={**form, "action": "save",
                                          "html": "<p>\n{% if %}</p>"})
    assert "line 2" in broken.text and 'aria-invalid=true' in broken.text
    saved = browser.post(edit_url, data={**form, "action": "save"})
    assert "Template saved." in saved.text
    assert api.get(f"{live.url}/api/v1/templates").json()["items"][0]["subject"] == \
        "Welcome {{ first_name }}"


def test_contacts_page_imports_a_csv_and_lists_rejected_rows(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    page = browser.get(live.url + "/contacts").text
    csv_bytes = (b"email,name,city\nann@example.org,Ann,Oslo\nnope,Bob,Rome\n"
                 b"ANN@example.org,Ann B,\n")
    resp = browser.post(live.url + "/contacts/import", data={"csrf_token": _csrf(page)},
                        files={"file": ("c.csv", csv_bytes, "text/csv")})
    assert resp.status_code == 200
    assert "Imported 1, updated 0, merged 1, rejected 1." in resp.text and "Row 3:" in resp.text
    # The repeated address is named with both rows, and its values won.
    assert "Row 4: same address as row 2 (ann@example.org)" in resp.text
    assert "ann@example.org" in resp.text and "city: Oslo" in resp.text and "Ann B" in resp.text
    no_token = browser.post(live.url + "/contacts/import",
                            files={"file": ("c.csv", csv_bytes, "text/csv")})
    assert no_token.status_code == 400  # CSRF


def test_a_gmail_draft_becomes_a_template_from_the_drafts_page(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    live.sandbox.add_draft("ada@example.com", "Subject: Hi {{ name }}\r\n\r\nHello {{ name }}\r\n")
    page = browser.get(live.url + "/templates/drafts")
    assert page.status_code == 200 and "Hi {{ name }}" in page.text
    draft_id = re.search(r'name="draft_id" value="([^"]+)"', page.text).group(1)
    made = browser.post(live.url + "/templates/drafts",
                        data={"csrf_token": _csrf(page.text), "draft_id": draft_id})
    assert "The draft is now a template." in made.text
    assert "Hello {{ name }}" in made.text


def test_campaigns_page_queues_with_progress_lines_and_lists_the_result(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    api = live.api(live.token())
    api.post(f"{live.url}/api/v1/contacts", json=[
        {"email": f"c{i}@example.org", "attributes": {"plan": "pro" if i % 2 else "free"}}
        for i in range(2500)])
    tid = api.post(f"{live.url}/api/v1/templates", json={
        "name": "n", "subject": "News", "html": "<p>n</p>"}).json()["id"]
    page = browser.get(live.url + "/campaigns").text
    resp = browser.post(live.url + "/campaigns", headers={"Accept": "application/x-ndjson"},
                        data={"csrf_token": _csrf(page), "template_id": str(tid),
                              "name": "All"})
    lines = [json.loads(x) for x in resp.text.splitlines()]
    assert [x["queued"] for x in lines[:-1]][-1] == 2500 and len(lines) >= 3
    assert lines[-1]["counts"]["queued"] == 2500
    pro = api.post(f"{live.url}/api/v1/segments", json={
        "name": "Pro", "conditions": [{"field": "contact.plan", "op": "equals",
                                        "value": "pro"}]})
    assert pro.status_code == 201 and pro.json()["matching"] == 1250, pro.text
    plain = browser.post(live.url + "/campaigns", data={
        "csrf_token": _csrf(page), "template_id": str(tid), "name": "Pro A/B",
        "segment_id": str(pro.json()["id"]), "ab": "on",
        "subject_b": "Big news", "test_percent": "10", "metric": "click",
        "decide_hours": "2"})
    assert "Campaign queued: 125 messages" in plain.text
    assert "Pro A/B" in plain.text and "decides" in plain.text


def test_pages_carry_a_csp_and_errors_get_a_page(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    home = browser.get(live.url + "/")
    assert "script-src 'self'" in home.headers["Content-Security-Policy"]
    assert home.headers["X-Content-Type-Options"] == "nosniff"
    missing = browser.get(live.url + "/no-such-page")
    assert missing.status_code == 404 and "Error 404" in missing.text
    assert 'href="/static/app.css' in missing.text


def test_disconnecting_an_account_revokes_its_grant_at_google(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    page = browser.get(live.url + "/accounts").text
    assert "ada@example.com" in page and "healthy" in page
    done = browser.post(live.url + "/accounts/1/disconnect", data={"csrf_token": _csrf(page)})
    assert "disconnected and its grant revoked at Google" in done.text
    with live.sandbox.state.lock:
        assert all(g.revoked for g in live.sandbox.state.grants.values())
    assert "Reconnect" in browser.get(live.url + "/accounts").text
    other = requests.Session()
    live.sign_in("bob@example.com", session=other)
    page = other.get(live.url + "/accounts").text
    assert other.post(live.url + "/accounts/1/disconnect",
                      data={"csrf_token": _csrf(page)}).status_code == 404


def test_settings_create_and_revoke_a_token_and_rotate_the_secret(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    page = browser.get(live.url + "/settings").text
    made = browser.post(live.url + "/settings", data={"csrf_token": _csrf(page),
                                                      "action": "create_token",
                                                      "name": "crm"})
    token = re.search(r"data-new-token>([^<]+)<", made.text).group(1)
    api = live.api(token)
    assert api.get(live.url + "/api/v1/messages").status_code == 200
    secret = api.get(live.url + "/api/v1/webhook-secret").json()["secret"]
    assert f"data-new-secret>{secret}<" in page  # made on the first visit, shown then
    token_id = re.search(r'name="token_id" value="(\d+)"', made.text).group(1)
    browser.post(live.url + "/settings", data={"csrf_token": _csrf(made.text),
                                               "action": "revoke_token", "token_id": token_id})
    assert api.get(live.url + "/api/v1/messages").status_code == 401
    assert secret not in browser.get(live.url + "/settings").text  # shown once, not again
    rotated = browser.post(live.url + "/settings", data={"csrf_token": _csrf(made.text),
                                                         "action": "rotate_secret"})
    assert "previous one works for 24 hours" in rotated.text
    new_secret = re.search(r"data-new-secret>([^<]+)<", rotated.text).group(1)
    assert new_secret != secret and new_secret.startswith("whsec_")
    assert new_secret == api_secret(live)
    again = browser.get(live.url + "/settings").text
    assert new_secret not in again and new_secret[:10] + "…" in again


def api_secret(live) -> str:
    return live.user("ada@example.com").get(live.url + "/api/v1/webhook-secret").json()["secret"]


def test_queue_filters_by_search_and_campaign(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    api = live.api(live.token())
    for to, subject in (("ann@example.org", "Invoice 7"), ("bob@example.org", "Hello")):
        api.post(f"{live.url}/api/v1/messages", json={"to": to, "subject": subject,
                                                      "html": "<p>x</p>",
                                                      "send_at": "2031-01-01T00:00:00Z"})
    page = browser.get(live.url + "/?q=invoice").text
    assert "Invoice 7" in page and "Hello" not in page
    assert [m["to"] for m in api.get(f"{live.url}/api/v1/messages?q=bob").json()["items"]] \
        == ["bob@example.org"]
    assert api.get(f"{live.url}/api/v1/messages?campaign_id=x").status_code == 422


def test_a_message_page_shows_it_rendered_and_reschedules_or_edits_it(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    api = live.api(live.token())
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "g@example.org", "subject": "Hi {{ name }}", "html": "<p>Dear {{ name }}</p>",
        "data": {"name": "Grace"}, "delay_seconds": 600}).json()["id"]
    page = browser.get(f"{live.url}/messages/{mid}").text
    assert "<strong>Subject:</strong> Hi Grace" in page and "Dear Grace" in page
    changed = browser.post(f"{live.url}/messages/{mid}/edit", data={
        "csrf_token": _csrf(page), "to": "g@example.org", "subject": "Hello {{ name }}",
        "html": "<p>Dear {{ name }}</p>", "data": '{"name": "Grace"}', "when": "at",
        "send_at_local": "2031-05-06T07:08", "timezone": "Europe/Paris"})
    assert "Message changed." in changed.text
    body = api.get(f"{live.url}/api/v1/messages/{mid}").json()
    assert body["subject"] == "Hello Grace"
    assert body["release_at"] == "2031-05-06T05:08:00+00:00"  # 07:08 in Paris (CEST)
    held = browser.post(f"{live.url}/messages/{mid}/edit", data={
        "csrf_token": _csrf(page), "html": "<p>{{ missing }}</p>", "data": "{}",
        "when": "keep"})
    assert "held" in held.text and "missing" in held.text
    bad = browser.post(f"{live.url}/messages/{mid}/edit", data={
        "csrf_token": _csrf(page), "data": "{nope", "when": "keep"})
    assert "Not changed: data is not valid JSON" in bad.text


def test_a_contact_is_deleted_from_its_page_and_its_messages_cancelled(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    page = browser.get(live.url + "/contacts").text
    browser.post(live.url + "/contacts/import", data={"csrf_token": _csrf(page)},
                 files={"file": ("c.csv", b"email\nann@example.org\n", "text/csv")})
    compose = browser.get(live.url + "/compose").text
    browser.post(live.url + "/compose", data={
        "csrf_token": _csrf(compose), "to": "ann@example.org", "subject": "S",
        "html": "<p>h</p>", "when": "at", "send_at_local": "2031-03-04T09:30",
        "timezone": "UTC"})
    page = browser.get(live.url + "/contacts").text
    action = re.search(r'action="(/contacts/\d+/delete)"', page).group(1)
    assert 'data-confirm="Delete ann@example.org?' in page  # the page asks first
    done = browser.post(live.url + action, data={"csrf_token": _csrf(page)})
    assert "1 message not yet sent was cancelled" in done.text
    assert 'data-contact="ann@example.org"' not in done.text
    assert "cancelled" in browser.get(live.url + "/?status=cancelled").text


def test_a_recurring_send_from_compose_keeps_its_catch_up_choice(live_no_worker):
    live = live_no_worker
    api = live.user()
    template = api.post(f"{live.url}/api/v1/templates", json={
        "name": "daily", "subject": "Daily", "html": "<p>d</p>"}).json()
    browser = live.browser()
    compose = browser.get(live.url + "/compose").text
    assert 'name="catch_up"' in compose
    resp = browser.post(live.url + "/compose", data={
        "csrf_token": _csrf(compose), "to": "r@example.org", "template_id": template["id"],
        "when": "recurring", "cron": "0 9 * * *", "timezone": "UTC", "catch_up": "hold"})
    assert "Recurring send saved" in resp.text
    (schedule,) = api.get(f"{live.url}/api/v1/schedules").json()["items"]
    assert schedule["catch_up"] == "hold"


def test_signing_out_ends_the_session_on_the_server_and_everywhere(live_no_worker):
    live = live_no_worker
    first, second = live.browser(), live.browser()
    copied = requests.Session()
    copied.cookies.update(first.cookies)  # a stolen copy of the first browser's cookie
    assert "Compose" in copied.get(live.url + "/compose").text
    first.post(live.url + "/auth/logout",
               data={"csrf_token": _csrf(first.get(live.url + "/").text)})
    ended = copied.get(live.url + "/compose")
    assert "Your session has ended" in ended.text and 'name="to"' not in ended.text
    assert 'name="to"' in second.get(live.url + "/compose").text  # another browser stays
    third = live.browser()
    second.post(live.url + "/auth/logout/everywhere",
                data={"csrf_token": _csrf(second.get(live.url + "/settings").text)})
    for browser in (second, third):
        assert 'name="to"' not in browser.get(live.url + "/compose").text


def test_the_template_editor_attaches_files_inline_images_and_per_recipient_files(
        live_no_worker):
    live = live_no_worker
    browser = live.browser()
    api = live.api(live.token())
    page = browser.get(live.url + "/templates/new").text
    assert 'enctype="multipart/form-data"' in page and 'name="new_files"' in page
    form = {"csrf_token": _csrf(page), "name": "Invoice", "subject": "Your invoice",
            "html": '<p>Attached. <img src="cid:logo.png" alt="Logo"></p>', "text": "",
            "amp": "", "sources": "[]", "attachments_form": "1", "action": "save",
            "file_field": "invoice_file"}
    big = b"%PDF" + b"x" * (12 * 1024 * 1024)  # above the 10 MB a form may otherwise be
    saved = browser.post(live.url + "/templates/new", data=form, files=[
        ("new_files", ("terms.pdf", big, "application/pdf")),
        ("inline_images", ("logo.png", b"\x89PNG....", "image/png"))])
    assert "Template saved." in saved.text, saved.text[:500]
    tid = int(saved.url.rsplit("/", 1)[1])
    files = api.get(f"{live.url}/api/v1/templates/{tid}").json()["attachments"]
    assert [(f.get("filename"), f.get("cid"), f.get("file_field")) for f in files] == [
        ("terms.pdf", None, None), ("logo.png", "logo.png", None),
        (None, None, "invoice_file")]
    assert files[0]["size"] == len(big)
    assert "inline as <code>cid:logo.png</code>" in saved.text
    # A save with an error shows the files again, and the next save keeps what is ticked.
    again = browser.post(saved.url, data={**form, "csrf_token": _csrf(saved.text),
                                          "html": "{% if %}", "file_field": ""})
    assert again.text.count('name="keep_attachment"') == 3
    kept = browser.post(saved.url, data={**form, "csrf_token": _csrf(again.text),
                                         "file_field": "", "keep_attachment": ["0", "2"]})
    assert "Template saved." in kept.text
    files = api.get(f"{live.url}/api/v1/templates/{tid}").json()["attachments"]
    assert [f.get("filename") or f.get("file_field") for f in files] == ["terms.pdf",
                                                                         "invoice_file"]


def test_the_audit_log_leaves_out_previews_and_refusals_and_names_each_object(
        live_no_worker):
    live = live_no_worker
    browser = live.browser()
    page = browser.get(live.url + "/templates").text
    browser.post(live.url + "/templates/starter", data={"csrf_token": _csrf(page),
                                                        "key": "welcome"})
    page = browser.get(live.url + "/templates/new").text
    for action in ("preview", None):  # a preview, then a save that is refused (no name)
        browser.post(live.url + "/templates/new", data={
            "csrf_token": _csrf(page), "subject": "s", "html": "<p>h</p>",
            **({"action": action, "name": "x"} if action else {})})
    browser.post(live.url + "/compose/preview", data={"csrf_token": _csrf(page),
                                                      "to": "a@example.org",
                                                      "subject": "s", "html": "h"})
    page = browser.get(live.url + "/campaigns").text
    browser.post(live.url + "/campaigns", data={"csrf_token": _csrf(page),
                                                "template_id": "999"})
    with live.db.read() as s:
        from sqlalchemy import select

        from scheduler.store.models import AuditEntry
        entries = s.execute(select(AuditEntry.action, AuditEntry.target)).all()
    assert entries == [("added a starter template", "template 1")]
    shown = browser.get(live.url + "/team").text
    assert '<a href="/templates/1">template 1</a>' in shown and "None" not in shown.split(
        "data-audit", 1)[1]


def test_compose_sends_a_template_to_a_segment_and_only_to_it(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    api = live.api(live.token())
    api.post(live.url + "/api/v1/contacts", json=[
        {"email": f"c{i}@example.org", "attributes": {"plan": "pro" if i < 2 else "free"}}
        for i in range(5)])
    template = api.post(live.url + "/api/v1/templates", json={
        "name": "News", "subject": "News", "html": "<p>n</p>"}).json()["id"]
    segment = api.post(live.url + "/api/v1/segments", json={"name": "Pro", "conditions": [
        {"field": "contact.plan", "op": "equals", "value": "pro"}]}).json()["id"]
    page = browser.get(live.url + "/compose").text
    assert "Segment: Pro" in page
    counted = browser.post(live.url + "/segments/count", data={
        "csrf_token": _csrf(page), "segment_id": str(segment)}).json()
    assert (counted["matching"], counted["subscribed"]) == (2, 2)
    done = browser.post(live.url + "/compose", data={
        "csrf_token": _csrf(page), "audience": "contacts", "segment_id": str(segment),
        "template_id": str(template), "when": "now"})
    assert "Queued 2 messages to your contacts" in done.text
    sent_to = sorted(m["to"] for m in api.get(live.url + "/api/v1/messages").json()["items"])
    assert sent_to == ["c0@example.org", "c1@example.org"]
    free = browser.post(live.url + "/compose", data={
        "csrf_token": _csrf(page), "audience": "contacts", "segment_id": "999",
        "template_id": str(template), "when": "now"})
    assert free.status_code == 404 and "no segment 999" in free.text
