"""The web app in a real browser: Debian's chromium driven by Playwright, against the app and
the sandbox Google over real HTTP. Every page must load without console errors (the
Content-Security-Policy included)."""
from __future__ import annotations

from tests.browser.conftest import nav as _nav
from tests.browser.conftest import sign_in as _sign_in


def test_sign_in_compose_schedule_and_cancel(live_no_worker, page):
    live = live_no_worker
    _sign_in(page, live)
    _nav(page, "Compose")
    page.fill("#to", "Grace <grace@example.org>")
    page.fill("#subject", "Hello {{ first_name }}")
    page.fill("#html", "<p>Hi {{ first_name }}</p>")
    page.fill("#data", '{"first_name": "Grace"}')
    page.check("input[name=when][value=at]")
    page.fill("#send_at_local", "2031-03-04T09:30")
    page.get_by_role("button", name="Schedule").click()
    page.get_by_text("Message scheduled.").wait_for()
    page.get_by_role("button", name="Cancel").first.click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel the message").click()
    page.get_by_text("Message cancelled.").wait_for()
    _nav(page, "Queue")
    assert "Hello Grace" in page.content()


def test_contacts_import_shows_progress_and_the_report(live_no_worker, page, tmp_path):
    live = live_no_worker
    _sign_in(page, live)
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name,plan\n" + "".join(
        f"p{i}@example.org,P {i},pro\n" for i in range(3000)) + "broken,B,x\n",
        encoding="utf-8")
    _nav(page, "Contacts")
    page.set_input_files("#file", str(csv_file))
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("Imported 3000, updated 0, merged 0, rejected 1.").wait_for()
    assert "Row 3002:" in page.locator("[data-import-report]").inner_text()
    assert page.locator("[data-import-status]").inner_text() == "Done."


def test_templates_preview_and_a_campaign_with_progress(live_no_worker, page):
    live = live_no_worker
    _sign_in(page, live)
    _nav(page, "Templates")
    page.get_by_role("button", name="Add the starter Welcome").click()
    page.get_by_text("Added the starter").wait_for()
    page.fill("#preview_data", '{"first_name": "Ada", "start_url": "https://x.example/s"}')
    page.get_by_role("button", name="Preview").click()
    assert page.locator("section.preview").get_by_text("Welcome to our service, Ada!") \
        .is_visible()
    _nav(page, "Campaigns")
    page.get_by_role("button", name="Queue the campaign").click()
    dialog = page.get_by_role("dialog")
    assert "Send to 0 contacts from ada@example.com starting now?" in dialog.inner_text()
    dialog.get_by_role("button", name="Queue the campaign").click()
    page.get_by_text("Queued 0 messages").wait_for()


CUSTOMER_MAIL = ("From: Grace Hopper <grace@example.org>\r\nTo: ada@example.com\r\n"
                 "Subject: Cannot log in\r\nMessage-ID: <q1@example.org>\r\n\r\nHelp!\r\n")


def test_reply_in_a_gmail_thread_with_a_saved_reply_and_its_preview(live, page):
    thread_id = live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL)["threadId"]
    _sign_in(page, live)
    _nav(page, "Templates")
    page.get_by_role("button", name="Add the starter Support reply").click()
    page.get_by_text("Added the starter").wait_for()
    _nav(page, "Replies")
    page.get_by_role("link", name="Cannot log in").click()
    page.locator("[data-preview][data-preview-ready]").wait_for()
    assert page.locator("[data-preview-subject]").inner_text() == "Re: Cannot log in"
    assert "Hi Grace," in page.frame_locator("[data-preview-html]").locator("body").inner_text()
    page.fill("#html", "")
    page.get_by_role("button", name="Send reply").click()
    page.get_by_text("Reply queued in the thread.").wait_for()
    from tests.helpers import wait_for
    wait_for(lambda: [m for m in live.sandbox.sent() if m["threadId"] == thread_id])
    page.reload()
    assert "sent" in page.locator(".status").first.inner_text()


def test_the_dashboard_draws_its_charts(live, page):
    _sign_in(page, live)
    api = live.api(live.token())
    for i in range(3):
        api.post(live.url + "/api/v1/messages", json={
            "to": f"r{i}@example.org", "subject": "s", "html": "<p>h</p>"})
    from tests.helpers import wait_for
    wait_for(lambda: live.sandbox.count() == 3)
    _nav(page, "Dashboard")
    page.locator("body[data-charts-drawn]").wait_for()
    assert page.locator("[data-total=sent] strong").inner_text() == "3"
    box = page.locator("#chart-days").bounding_box()
    assert box["width"] > 200 and box["height"] > 100


def test_a_team_invitation_switching_teams_and_another_teams_ids(live_no_worker, page):
    live = live_no_worker
    _sign_in(page, live)
    _nav(page, "Compose")
    page.fill("#to", "grace@example.org")
    page.fill("#subject", "Private")
    page.fill("#html", "<p>x</p>")
    page.check("input[name=when][value=in]")
    page.fill("#in_minutes", "60")
    page.get_by_role("button", name="Schedule").click()
    page.get_by_text("Message scheduled.").wait_for()
    message_url = page.url
    _nav(page, "Team")
    page.fill("#invite_email", "bob@example.com")
    page.select_option("#invite_role", "viewer")
    page.uncheck("input[name=send_email]")
    page.get_by_role("button", name="Invite").click()
    page.get_by_text("Invited bob@example.com.").wait_for()
    assert page.locator("[data-invitation='bob@example.com']").is_visible()
    assert "invited someone" in page.locator("[data-audit]").inner_text()
    # Bob signs in with the invited address: he is in Ada's team, as a viewer.
    page.locator("[data-me] summary").click()
    page.get_by_role("button", name="Sign out").click()
    _sign_in(page, live, "bob@example.com")
    page.get_by_text("You joined ada@example.com's team.").wait_for()
    assert "Private" in page.content()  # Ada's queue
    assert page.locator("#compose, form.compose").count() == 0
    # Switching to his own team: Ada's message is not there, not even by its id.
    page.locator("[data-me] summary").click()
    page.select_option("#team_switch", label="bob@example.com's team (owner)")
    page.get_by_text("Now working in bob@example.com's team").wait_for()
    page.expected.append(message_url)
    page.goto(message_url)
    assert "No such message in your team." in page.content()


UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML.slice(0, 80))"""


def test_pages_fit_a_phone_label_every_field_and_start_with_a_skip_link(live, page):
    _sign_in(page, live)
    live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/", "/dashboard", "/compose", "/replies", "/templates", "/templates/new",
                 "/contacts", "/rules", "/campaigns", "/accounts", "/team", "/settings"):
        page.goto(live.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)
        assert page.evaluate(UNLABELLED) == [], path
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


COUNTDOWN = ("<p>The sale ends soon.</p>{{ live_image('countdown', until=ends, "
             "alt='Time left') }}")


def _seconds_on_screen(page, frame_locator) -> int:
    """The time left the countdown shows in the browser right now, read from a screenshot."""
    import io

    from PIL import Image

    from tests.image_reader import seconds_shown
    image = frame_locator.locator("img[alt='Time left']")
    image.wait_for()
    image.evaluate("i => i.decode()")
    assert image.evaluate("i => i.naturalWidth") == 600
    top = image.bounding_box()["y"]
    page.evaluate("y => window.scrollBy(0, y - 100)", top)
    box = image.bounding_box()
    shot = page.screenshot(clip=box)  # what the reader sees, where the image is
    return seconds_shown(Image.open(io.BytesIO(shot)).convert("RGB"))


def test_a_live_countdown_in_the_template_preview_and_in_the_sandbox_mailbox(live, page):
    _sign_in(page, live)
    _nav(page, "Templates")
    page.goto(live.url + "/templates/new")
    page.fill("#name", "Sale")
    page.fill("#subject", "Sale")
    page.fill("#html", COUNTDOWN)
    page.fill("#preview_data", '{"ends": "2027-01-01T00:00:00Z"}')
    page.fill("#preview_at", "2026-12-31T23:00:00")
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("heading", name="Preview").wait_for()
    shown = _seconds_on_screen(page, page.frame_locator("section.preview iframe"))
    # The GIF counts down from 1:00:00 as of the chosen time, a frame a second.
    assert 3600 - 30 <= shown <= 3600, shown
    import datetime as dt
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(hours=5)
    api = live.api(live.token())
    resp = api.post(live.url + "/api/v1/messages", json={
        "to": "reader@example.org", "subject": "Sale", "html": COUNTDOWN,
        "data": {"ends": ends.isoformat()}})
    assert resp.status_code == 201, resp.text
    from tests.helpers import wait_for
    wait_for(lambda: live.sandbox.count() == 1)
    page.goto(f"{live.sandbox.url}/sandbox/messages/{live.sandbox.sent()[0]['id']}")
    shown = _seconds_on_screen(page, page.frame_locator("iframe[title='HTML part']"))
    left = (ends - dt.datetime.now(dt.UTC)).total_seconds()
    assert left - 30 <= shown <= left + 1, (shown, left)


def test_clicking_through_the_gmail_add_on_in_the_sandbox_host(live, page):
    api = live.user()
    api.post(live.url + "/api/v1/contacts", json=[{"email": "grace@example.org",
                                                    "name": "Grace Hopper"}])
    api.post(live.url + "/api/v1/templates", json={
        "name": "Shipping", "kind": "reply", "html": "<p>Dear {{ name }}, it ships today.</p>"})
    live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL)
    page.goto(f"{live.sandbox.url}/sandbox/addon?owner=ada@example.com&app={live.url}")
    page.get_by_role("button", name="Home").click()
    addon = page.get_by_role("complementary", name="Add-on")
    addon.get_by_role("heading", name="Today's sends").wait_for()
    page.get_by_role("button", name="Open Cannot log in").click()
    addon.get_by_role("heading", name="Grace Hopper").wait_for()
    addon.get_by_role("button", name="Reply later").click()
    addon.get_by_label("When").fill("2031-03-04T09:30")
    addon.get_by_role("button", name="Schedule the reply").click()
    assert "Reply scheduled: Tue 04 Mar 2031, 09:30 UTC" in addon.get_by_role(
        "status").inner_text()
    assert "Re: Cannot log in" in addon.inner_text()
    page.fill("input[name=to]", "grace@example.org")
    page.get_by_role("button", name="Compose", exact=True).click()
    addon.get_by_role("button", name="Insert into the draft").click()
    draft = page.frame_locator("iframe[title='The draft']")
    draft.get_by_text("Dear Grace Hopper, it ships today.").wait_for()
