"""The browser tier's fixtures: Debian's chromium through Playwright, a page that fails the
test on any console error, and signing in through the sandbox Google."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def page():
    """A fresh browser page; fails the test on any console error or page error."""
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      timezone_id="Europe/Paris")
        tab = context.new_page()
        # A test that opens an error page on purpose lists its URL in tab.expected.
        tab.expected = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" and not (
            tab.expected and "the server responded with a status of" in m.text) else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("response", lambda r: errors.append(f"{r.status} {r.url}")
               if r.status >= 400 and not any(x in r.url for x in tab.expected) else None)
        tab.set_default_timeout(15_000)
        yield tab
        browser.close()
    assert errors == [], errors


def nav(page, name: str) -> None:
    """Follow a link of the main navigation (opening the phone menu first if folded)."""
    menu = page.locator("[data-menu]")
    if menu.is_visible() and menu.get_attribute("aria-expanded") == "false":
        menu.click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def sign_in(page, live, email: str = "ada@example.com") -> None:
    """Sign in through the sandbox Google's consent page."""
    page.goto(live.url + "/")
    page.get_by_role("link", name="Sign in with Google").click()
    page.fill("input[name=email]", email)
    page.locator("button[value=allow]").click()
    page.wait_for_url(live.url + "/**")


def axe(page) -> list[dict]:
    """axe-core's critical and serious violations on the page as it is now."""
    if not AXE.is_file():
        raise RuntimeError(f"axe-core is not installed at {AXE}: run make test (npm ci)")
    # Evaluated through the DevTools protocol, which the pages' CSP does not govern (a
    # <script> tag would be refused by script-src 'self').
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'critical' || v.impact === 'serious')
          .map(v => ({id: v.id, impact: v.impact, help: v.help,
                      nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return found
