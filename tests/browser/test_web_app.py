"""The web app as a new user tries it, in chromium: every page passes axe-core at desktop
and phone widths without console errors or sideways scrolling; the queue pages, sorts,
updates itself and acts in bulk after a confirmation; contacts, segments and recurring
sends are managed in pages; the reply page shows what is being answered."""
from __future__ import annotations

import base64
import datetime as dt
import re

import pytest

from tests.browser.conftest import axe, nav, sign_in
from tests.helpers import wait_for

CUSTOMER_MAIL = ("From: Grace Hopper <grace@example.org>\r\nTo: ada@example.com\r\n"
                 "Subject: Cannot log in\r\nMessage-ID: <q1@example.org>\r\n\r\n"
                 "Help! My code is refused since this morning.\r\n")


def _later(days: float = 2, minutes: int = 0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days, minutes=minutes)).isoformat()


def _seed(live, api) -> dict:
    """A team with something on every page: contacts, templates, a segment, messages in
    several statuses, a campaign, rules, a schedule, a reply thread."""
    url = live.url + "/api/v1"
    api.post(url + "/contacts", json=[
        {"email": f"reader{i}@example.org", "name": f"Reader {i}",
         "attributes": {"plan": "pro" if i % 2 else "free"}} for i in range(12)]
        + [{"email": "kat@example.org", "name": 'Katherine "Kat" Johnson'}])
    welcome = api.post(url + "/templates", json={"starter": "welcome"}).json()
    api.post(url + "/templates", json={"starter": "support-reply"})
    api.post(url + "/segments", json={"name": "Pro plan", "conditions": [
        {"field": "contact.plan", "op": "equals", "value": "pro"}]})
    api.post(url + "/rules", json={"seed": "abandoned-cart"})
    schedule = api.post(url + "/schedules", json={
        "name": "Monday digest", "cron": "0 9 * * mon", "timezone": "Europe/Paris",
        "template_id": welcome["id"], "to": "kat@example.org"}).json()
    kat = api.post(url + "/messages", json={
        "to": '"Katherine \\"Kat\\" Johnson" <kat@example.org>', "subject": "It's here",
        "html": "<p>Hi</p>", "send_at": _later(3)}).json()
    thread = live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL)["threadId"]
    return {"welcome": welcome, "schedule": schedule, "kat": kat, "thread": thread}


PAGES = ("/", "/dashboard", "/compose", "/replies", "/contacts", "/contacts/new",
         "/contacts/1", "/campaigns", "/schedules", "/rules", "/templates", "/templates/new",
         "/templates/1", "/accounts", "/team", "/settings")


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_passes_axe_without_errors_or_sideways_scrolling(live_no_worker, page,
                                                                    width):
    live = live_no_worker
    sign_in(page, live)
    seeded = _seed(live, live.api(live.token()))
    page.set_viewport_size({"width": width, "height": 900})
    for path in (*PAGES, f"/messages/{seeded['kat']['id']}",
                 f"/replies/1/{seeded['thread']}"):
        page.goto(live.url + path)  # waits for "load": scripts have run
        assert axe(page) == [], path
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)
    # Pages recipients see.
    page.expected.append("/t/c/not-a-token")
    page.goto(live.url + "/t/c/not-a-token")
    assert axe(page) == []


def test_the_nav_fits_one_line_marks_the_page_and_folds_on_a_phone(live_no_worker, page):
    live = live_no_worker
    sign_in(page, live)
    nav(page, "Contacts")
    main = page.get_by_role("navigation", name="Main")
    links = main.get_by_role("link")
    tops = {round(links.nth(i).bounding_box()["y"]) for i in range(links.count())}
    assert len(tops) == 1, tops  # one line at 1280 px
    assert main.locator("[aria-current=page]").inner_text() == "Contacts"
    page.set_viewport_size({"width": 390, "height": 844})
    assert not main.is_visible()
    page.get_by_role("button", name="Menu").click()
    assert main.is_visible()
    nav(page, "Schedules")
    page.get_by_role("heading", name="Recurring sends").wait_for()
    # A table on a phone: each cell says which column it is.
    live.api(live.token()).post(live.url + "/api/v1/messages", json={
        "to": "r@example.org", "subject": "On a phone", "html": "<p>x</p>",
        "send_at": _later()})
    nav(page, "Queue")
    cell = page.locator("tr[data-message] td[data-label=Status]")
    assert cell.evaluate("td => getComputedStyle(td, '::before').content") == '"Status"'
    assert page.locator("table.queue thead").evaluate(
        "t => t.getBoundingClientRect().width") <= 1  # the header row is for screen readers


def test_queue_pages_keep_their_filters_count_per_status_and_sort_by_release(
        live_no_worker, page):
    live = live_no_worker
    sign_in(page, live)
    api = live.api(live.token())
    for i in range(60):  # created in one order, released in the reverse one
        api.post(live.url + "/api/v1/messages", json={
            "to": f"r{i}@example.org", "subject": f"Note {i:02d}", "html": "<p>x</p>",
            "send_at": _later(1, minutes=60 - i)})
    api.post(live.url + "/api/v1/messages", json={
        "to": "held@example.org", "subject": "Needs {{ plan }}", "html": "<p>{{ plan }}</p>"})
    nav(page, "Queue")
    tabs = page.get_by_role("navigation", name="Statuses")
    assert tabs.locator("[data-tab=scheduled] .count").inner_text() == "60"
    assert tabs.locator("[data-tab=held] .count").inner_text() == "1"
    tabs.locator("[data-tab=scheduled]").click()
    subjects = page.locator("tr[data-message] td[data-label=Subject] a").all_inner_texts()
    assert subjects[:3] == ["Note 59", "Note 58", "Note 57"]  # the soonest release first
    assert len(subjects) == 50
    page.get_by_role("link", name="Next page →").click()
    assert "None" not in page.url and "status=scheduled" in page.url
    more = page.locator("tr[data-message] td[data-label=Subject] a").all_inner_texts()
    assert more == [f"Note {i:02d}" for i in range(9, -1, -1)]
    assert page.locator(".flash.error").count() == 0
    # A filter is kept across pages and tabs; clearing it is one click.
    page.fill("#q", "Note 0")
    page.get_by_role("button", name="Apply").click()
    assert page.locator("tr[data-message]").count() == 10
    assert "q=Note+0" in page.locator("[data-tab=all]").get_attribute("href")


def test_the_queue_updates_by_itself_and_cancels_in_bulk_after_a_confirmation(
        live_no_worker, page):
    live = live_no_worker
    sign_in(page, live)
    api = live.api(live.token())
    for i in range(3):
        api.post(live.url + "/api/v1/messages", json={
            "to": f"r{i}@example.org", "subject": f"Bulk {i}", "html": "<p>x</p>",
            "send_at": _later()})
    nav(page, "Queue")
    page.locator("tr[data-message]").nth(2).wait_for()
    # A message queued elsewhere shows up without a reload.
    api.post(live.url + "/api/v1/messages", json={
        "to": "late@example.org", "subject": "Arrived later", "html": "<p>x</p>",
        "send_at": _later()})
    page.get_by_role("link", name="Arrived later").wait_for(timeout=20_000)
    page.get_by_label("Select every open message on this page").check()
    page.locator("tr[data-message] input[type=checkbox]").first.uncheck()
    assert page.locator("[data-selected-count]").inner_text() == "3 selected"
    page.get_by_role("button", name="Cancel", exact=True).click()
    dialog = page.get_by_role("dialog")
    assert "Cancel 3 messages?" in dialog.inner_text()
    dialog.get_by_role("button", name="Keep things as they are").click()
    assert api.get(live.url + "/api/v1/messages?status=cancelled").json()["items"] == []
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel them").click()
    page.get_by_text("Cancelled 3 messages.").wait_for()
    assert len(api.get(live.url + "/api/v1/messages?status=cancelled").json()["items"]) == 3


def test_a_message_page_follows_the_message_and_tells_its_timeline_in_words(live, page):
    sign_in(page, live)
    api = live.api(live.token())
    made = api.post(live.url + "/api/v1/messages", json={
        "to": '"Katherine \\"Kat\\" Johnson" <kat@example.org>', "subject": "It's here",
        "html": "<p>Hi</p>", "send_at": _later()}).json()
    page.goto(f"{live.url}/messages/{made['id']}")
    facts = page.locator("dl.facts").first
    assert 'Katherine "Kat" Johnson <kat@example.org>' in facts.inner_text()
    timeline = page.locator("ol.timeline")
    assert "Scheduled" in timeline.inner_text() and "\\u0027" not in page.content()
    # The zone is named wherever a time is shown (the browser's: Europe/Paris).
    assert re.search(r"GMT\+1|CET", timeline.locator("time").first.inner_text())
    page.get_by_role("button", name="Send now").click()
    page.get_by_role("dialog").get_by_role("button", name="Send now").click()
    page.get_by_text("Message released now.").wait_for()
    wait_for(lambda: live.sandbox.count() == 1)
    page.locator("[data-status]", has_text="sent").wait_for(timeout=20_000)  # no reload
    assert "Sent through Gmail" in timeline.inner_text()


def test_a_past_at_time_is_refused_with_the_field_named(live_no_worker, page):
    live = live_no_worker
    sign_in(page, live)
    nav(page, "Compose")
    page.fill("#to", "grace@example.org")
    page.fill("#subject", "Late")
    page.fill("#html", "<p>x</p>")
    page.check("input[name=when][value=at]")
    page.fill("#send_at_local", "2020-03-04T09:30")
    page.expected.append("/compose")  # the form comes back as a 422, with its values
    page.get_by_role("button", name="Schedule").click()
    page.get_by_text("that time has passed").wait_for()
    assert page.locator("#send_at_local").get_attribute("aria-invalid") == "true"
    assert live.api(live.token()).get(live.url + "/api/v1/messages").json()["items"] == []


def test_contacts_are_added_searched_edited_with_their_history_and_deleted(live_no_worker,
                                                                          page):
    live = live_no_worker
    sign_in(page, live)
    nav(page, "Contacts")
    page.get_by_role("link", name="Add a contact").click()
    page.fill("#email", "Grace@Example.org")
    page.fill("#name", "Grace Hopper")
    page.fill("#attributes", '{"plan": "pro"}')
    page.get_by_role("button", name="Add the contact").click()
    page.get_by_text("Contact added.").wait_for()
    page.get_by_role("heading", name="Grace Hopper").wait_for()
    page.fill("#name", "Rear Admiral Grace Hopper")
    page.select_option("#subscription", "unsubscribed")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Contact saved.").wait_for()
    assert "unsubscribed" in page.locator("[data-subscription]").inner_text()
    live.api(live.token()).post(live.url + "/api/v1/messages", json={
        "to": "grace@example.org", "subject": "History", "html": "<p>x</p>",
        "send_at": _later(), "transactional": True})
    page.reload()
    page.get_by_role("link", name="History").wait_for()
    nav(page, "Contacts")
    page.fill("#q", "admiral")
    page.get_by_role("button", name="Search").click()
    assert page.locator("tr[data-contact]").count() == 1
    page.fill("#q", "nobody")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("No contact matches this search.").wait_for()
    page.goto(live.url + "/contacts?attribute=plan&value=pro")
    page.get_by_role("button", name="Delete grace@example.org").click()
    assert "Delete grace@example.org?" in page.get_by_role("dialog").inner_text()
    page.get_by_role("dialog").get_by_role("button", name="Delete the contact").click()
    page.get_by_text("Contact deleted; 1 message not yet sent was cancelled.").wait_for()


def test_an_import_refreshes_the_table_and_names_a_repeated_address(live_no_worker, page,
                                                                   tmp_path):
    live = live_no_worker
    sign_in(page, live)
    nav(page, "Contacts")
    page.get_by_text("No contacts yet.").wait_for()
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name,plan\nann@example.org,Ann,free\nbob@example.org,Bob,pro\n"
                        "ANN@example.org,Ann Again,pro\n", encoding="utf-8")
    page.set_input_files("#file", str(csv_file))
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("Imported 2, updated 0, merged 1, rejected 0.").wait_for()
    assert "Row 4: same address as row 2 (ann@example.org)" in page.locator(
        "[data-import-report]").inner_text()
    page.locator("tr[data-contact='ann@example.org']").wait_for()  # without a reload
    assert "Ann Again" in page.locator("tr[data-contact='ann@example.org']").inner_text()


def test_a_segment_counts_live_and_a_campaign_to_it_is_confirmed_with_its_size(
        live_no_worker, page, monkeypatch):
    live = live_no_worker
    sign_in(page, live)
    api = live.api(live.token())
    api.post(live.url + "/api/v1/contacts", json=[
        {"email": f"c{i}@example.org", "attributes": {"plan": "pro" if i < 3 else "free"}}
        for i in range(5)] + [{"email": "gone@example.org", "attributes": {"plan": "pro"},
                               "subscription": "unsubscribed"}])
    api.post(live.url + "/api/v1/templates", json={"starter": "welcome"})
    nav(page, "Contacts")
    page.fill("#segment_name", "Pro")
    page.fill("#field_0", "plan")
    page.fill("#value_0", "pro")
    page.locator("[data-audience-size]", has_text="4 contacts, 3 subscribed").wait_for()
    page.get_by_role("button", name="Save the segment").click()
    page.get_by_text("Segment Pro saved.").wait_for()
    assert page.locator("tr[data-segment=Pro] [data-segment-subscribed]").inner_text() == "3"
    # A big team's page is not held up by its segments' counts: the script fills them in.
    from app.ui import contacts as contacts_page
    monkeypatch.setattr(contacts_page, "COUNT_IN_PAGE", 0)
    page.reload()
    page.locator("tr[data-segment=Pro] [data-count-segment]", has_text="4").wait_for()
    assert page.locator("tr[data-segment=Pro] [data-segment-subscribed]").inner_text() == "3"
    page.get_by_role("link", name="Send a campaign").click()
    assert page.locator("#segment_id option:checked").inner_text() == "Segment: Pro"
    page.locator("[data-audience-size]", has_text="3 subscribed").wait_for()
    page.get_by_role("button", name="Queue the campaign").click()
    dialog = page.get_by_role("dialog")
    assert ("Send to 3 contacts from ada@example.com starting now?"
            in dialog.inner_text()), dialog.inner_text()
    dialog.get_by_role("button", name="Queue the campaign").click()
    page.get_by_text("Queued 3 messages").wait_for()


def test_recurring_sends_are_listed_paused_resumed_edited_and_stopped(live_no_worker, page):
    live = live_no_worker
    sign_in(page, live)
    api = live.api(live.token())
    welcome = api.post(live.url + "/api/v1/templates", json={"starter": "welcome"}).json()
    nav(page, "Compose")
    page.fill("#to", "grace@example.org")
    page.check("input[name=when][value=recurring]")
    assert page.locator("[data-template-note]").is_visible()  # said before it is refused
    page.select_option("#template_id", str(welcome["id"]))
    assert not page.locator("[data-template-note]").is_visible()
    page.fill("#cron", "0 9 * * mon")
    page.fill("#timezone", "Europe/Paris")
    page.get_by_role("button", name="Schedule").click()
    page.get_by_text("Recurring send saved").wait_for()
    row = page.locator("tr[data-schedule]")
    assert len(row.locator("[data-upcoming] time").all()) == 3
    assert "Mon" in row.locator("[data-upcoming] time").first.inner_text()
    row.get_by_role("button", name=re.compile("^Pause")).click()
    page.get_by_text("Recurring send paused.").wait_for()
    assert row.locator("[data-state]").inner_text() == "paused"
    assert "none while paused" in row.locator("[data-upcoming]").inner_text()
    row.get_by_role("button", name=re.compile("^Resume")).click()
    page.get_by_text("Recurring send resumed").wait_for()
    row.get_by_text("Edit").click()
    row.get_by_label("Cron (minute hour day month weekday)").fill("30 7 * * *")
    row.get_by_role("button", name="Save").click()
    page.get_by_text("Recurring send saved.").wait_for()
    assert "30 7 * * *" in row.inner_text()
    row.get_by_role("button", name=re.compile("^Stop")).click()
    page.get_by_role("dialog").get_by_role("button", name="Stop it").click()
    page.get_by_text("Recurring send stopped").wait_for()
    assert row.locator("[data-state]").inner_text() == "stopped"
    assert api.get(live.url + "/api/v1/schedules").json()["items"][0]["state"] == "stopped"


def test_the_reply_page_shows_the_customers_message(live_no_worker, page):
    live = live_no_worker
    live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL)
    sign_in(page, live)
    nav(page, "Replies")
    page.get_by_role("link", name="Cannot log in").click()
    said = page.get_by_role("region", name="The conversation")
    assert "Help! My code is refused since this morning." in said.inner_text()
    assert "Grace Hopper" in said.inner_text()


def test_connecting_another_gmail_account_adds_it_to_the_team_one_works_in(live_no_worker,
                                                                         page):
    live = live_no_worker
    sign_in(page, live)
    nav(page, "Accounts")
    page.get_by_role("link", name="Connect another Gmail account").click()
    page.fill("input[name=email]", "support@example.com")
    page.locator("button[value=allow]").click()
    page.get_by_text("Connected support@example.com: you can send from it in this team.") \
        .wait_for()
    assert page.locator(".who").inner_text().startswith("ada@example.com")
    assert page.locator("tr[data-account='support@example.com']").is_visible()
    assert "send, read" in page.locator("tr[data-account='support@example.com']").inner_text()
    nav(page, "Compose")
    assert "support@example.com" in page.locator("#from").inner_text()


def test_destructive_actions_ask_first_and_keep_things_when_declined(live_no_worker, page):
    live = live_no_worker
    sign_in(page, live)
    api = live.api(live.token())
    api.post(live.url + "/api/v1/rules", json={"seed": "abandoned-cart"})
    asked = {
        "/rules": ("Delete the rule Cart reminder (1 h)", "Delete the rule"),
        "/accounts": ("Disconnect ada@example.com", "Disconnect"),
        "/settings": ("Rotate the secret", "Rotate the secret"),
    }
    for path, (button, words) in asked.items():
        page.goto(live.url + path)
        page.get_by_role("button", name=button).first.click()
        dialog = page.get_by_role("dialog")
        assert words in dialog.get_by_role("button").last.inner_text(), path
        dialog.get_by_role("button", name="Keep things as they are").click()
        assert not dialog.is_visible()
    assert len(api.get(live.url + "/api/v1/rules").json()["items"]) == 2
    assert "connected" in page.goto(live.url + "/accounts").text()


def test_a_starter_previews_with_its_sample_data_and_a_rule_set_is_added_once(
        live_no_worker, page):
    live = live_no_worker
    sign_in(page, live)
    nav(page, "Templates")
    page.get_by_role("button", name="Add the starter Welcome").click()
    page.get_by_text("Added the starter").wait_for()
    nav(page, "Templates")
    page.get_by_role("button", name="Add the starter Password reset").click()
    page.get_by_text("Added the starter").wait_for()
    nav(page, "Templates")
    page.get_by_role("link", name="Welcome").click()
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("heading", name="Preview").wait_for()
    assert page.locator(".flash.error").count() == 0
    nav(page, "Rules")
    page.get_by_role("button", name="Add the set abandoned-cart").click()
    page.get_by_text("Added 2 rules.").wait_for()
    page.get_by_role("button", name="Add the set abandoned-cart").click()
    page.get_by_text("nothing added").wait_for()
    assert page.locator("tr[data-rule]").count() == 2


def test_recipient_pages_wear_the_senders_name_not_ours(live, page):
    api = live.user()
    api.post(live.url + "/api/v1/messages", json={
        "to": "reader@example.org", "subject": "News", "html": "<p>News</p>"})
    wait_for(lambda: live.sandbox.count() == 1)
    raw = live.sandbox.sent()[0]["raw"]
    mail = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8", "replace")
    link = re.search(r"<(https?://[^>]+/u/[^>]+)>", mail).group(1)
    page.goto(link)
    assert "mailrelease" not in page.inner_text("body")
    assert page.locator("[data-sender]").inner_text().startswith("ada@example.com")
    page.expected.append("/t/c/")
    page.goto(live.url + "/t/c/forged")
    page.get_by_role("heading", name="This link does not work").wait_for()
