"""The web app in a real browser: Debian's chromium driven by Playwright, against the app and
the sandbox Google over real HTTP. Every page must load without console errors (the
Content-Security-Policy included)."""
from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def page():
    """A fresh browser page; fails the test on any console error or page error."""
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        tab = context.new_page()
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("response", lambda r: errors.append(f"{r.status} {r.url}")
               if r.status >= 400 else None)
        tab.set_default_timeout(15_000)
        yield tab
        browser.close()
    assert errors == [], errors


def _nav(page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def _sign_in(page, live) -> None:
    page.goto(live.url + "/")
    page.get_by_role("link", name="Sign in with Google").click()
    page.fill("input[name=email]", "ada@example.com")
    page.locator("button[value=allow]").click()
    page.wait_for_url(live.url + "/**")


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
    page.get_by_text("Imported 3000, updated 0, rejected 1.").wait_for()
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
    page.get_by_text("Queued 0 messages").wait_for()
