"""The account-safety guard: domain counts against Gmail's bulk-sender threshold, the
warm-up ramp, and pauses after bounces or complaints that a person resumes."""
from __future__ import annotations

import datetime as dt
import re
import uuid

from sqlalchemy import func, insert, select, update

from scheduler.audience import guard
from scheduler.store.db import utcnow
from scheduler.store.models import Message, SendingDomain
from tests.helpers import wait_for
from tests.integration.test_delivery import _bounce


def _sent_rows(account_id: int, count: int, to_domain: str, at: dt.datetime) -> list[dict]:
    rows = []
    for n in range(count):
        mid = uuid.uuid4().hex
        rows.append(dict(id=mid, team_id=1, account_id=account_id, to_addr=f"p{n}@{to_domain}",
                         from_addr="ada@example.com", subject_tpl="s", html_tpl="h",
                         status="sent", sent_at=at, release_at=at, created_at=at,
                         updated_at=at, rfc822_id=f"<mr.{mid}@example.com>", data={},
                         attempts=1))
    return rows


def _sent(live) -> int:
    return sum("SENT" in m["labelIds"] for m in live.sandbox.sent())


def _wait(live, api, mid: str, *statuses: str) -> dict:
    return wait_for(lambda: (b := api.get(f"{live.url}/api/v1/messages/{mid}").json())
                    ["status"] in statuses and b, 20)


def test_a_domain_is_warned_before_gmail_s_bulk_sender_threshold_and_kept_once_crossed(
        live_no_worker):
    live = live_no_worker
    api = live.user()
    base = f"{live.url}/api/v1"
    now = utcnow()
    with live.db.write() as s:
        # 3,900 to personal Gmail addresses and 2,000 elsewhere in the last 24 h.
        s.execute(insert(Message), _sent_rows(1, 3900, "gmail.com", now)
                  + _sent_rows(1, 2000, "example.net", now))
    domain = api.get(f"{base}/sending").json()["domains"][0]
    assert domain["domain"] == "example.com" and domain["sent_24h"] == 5900
    assert domain["to_personal_gmail_24h"] == 3900 and domain["warning"] is None
    api.post(f"{base}/contacts", json=[{"email": f"c{n}@gmail.com"} for n in range(150)]
             + [{"email": "d@example.org"}])
    # A campaign's preview says what it would add, before anything is queued.
    preview = api.post(f"{base}/campaigns/preview", json={"template_id": api.post(
        f"{base}/templates", json={"name": "t", "subject": "s", "html": "h"}).json()["id"]})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["audience"] == 151 and body["to_personal_gmail"] == 150
    assert any("4,050 of Gmail's 5,000" in w for w in body["warnings"]), body["warnings"]
    with live.db.read() as s:  # nothing queued
        assert s.scalar(select(func.count()).select_from(Message)) == 5900
    # Crossing it is for good: kept by the worker's round, shown after the count falls.
    with live.db.write() as s:
        s.execute(insert(Message), _sent_rows(1, 1100, "googlemail.com", now))
        assert guard.record_domains(s, now) == ["example.com"]
        assert guard.record_domains(s, now) == []  # once
    with live.db.write() as s:
        s.execute(update(Message).values(sent_at=now - dt.timedelta(days=2)))
    domain = api.get(f"{base}/sending").json()["domains"][0]
    assert domain["to_personal_gmail_24h"] == 0 and domain["bulk_since"] is not None
    assert "bulk sender for Gmail since" in domain["warning"]
    with live.db.read() as s:
        assert s.get(SendingDomain, "example.com").peak == 5000


def test_the_warm_up_ceiling_holds_what_exceeds_it_and_never_fails_it(live, api):
    base = f"{live.url}/api/v1"
    sending = api.put(f"{base}/accounts/1/warmup").json()
    assert sending["accounts"][0]["warmup_ceiling"] == 20
    assert sending["accounts"][0]["daily_cap"] == 20
    made = [api.post(f"{base}/messages", json={"to": f"r{n}@example.org", "subject": "s",
                                               "html": "h"}).json()["id"] for n in range(23)]
    finals = [_wait(live, api, mid, "sent", "held") for mid in made]
    held = [m for m in finals if m["status"] == "held"]
    assert len(held) == 3 and live.sandbox.count() == 20
    assert all(m["hold_kind"] == "daily_limit" and m["hold_until"] for m in held)
    assert "warm-up ceiling for today reached: 20 of 20" in held[0]["error"]
    # The ramp grows: on day 4 the ceiling is 40, and what waited goes.
    with live.db.write() as s:
        s.execute(update(Message).where(Message.status == "held")
                  .values(hold_until=utcnow()))
        from scheduler.store.models import GmailAccount
        s.execute(update(GmailAccount).values(warmup_started_at=utcnow()
                                              - dt.timedelta(days=4, hours=1)))
    live.worker.wake()
    wait_for(lambda: live.sandbox.count() == 23, 20)
    assert api.delete(f"{base}/accounts/1/warmup").json()["accounts"][0][
        "warmup_ceiling"] is None


def test_hard_bounces_pause_a_campaign_and_resuming_releases_what_it_held(live, api):
    base = f"{live.url}/api/v1"
    api.post(f"{base}/contacts", json=[{"email": f"c{n}@example.org"} for n in range(24)])
    tid = api.post(f"{base}/templates", json={"name": "t", "subject": "News",
                                              "html": "<p>Hi</p>"}).json()["id"]
    campaign = api.post(f"{base}/campaigns", json={
        "template_id": tid, "follow_ups": [{"after_seconds": 3 * 86400,
                                            "subject": "Following up"}]}).json()
    wait_for(lambda: _sent(live) == 24, 30)
    firsts = [m for m in api.get(f"{base}/messages?status=sent&limit=100").json()["items"]]
    assert len(firsts) == 24
    # Two bounces are not enough to pause (at least 3, and 5% of the last sends).
    for message in firsts[:2]:
        live.sandbox.deliver("ada@example.com", _bounce(message["message_id_header"]))
    live.worker.sync.sync_account(1, force=True)
    got = api.get(f"{base}/campaigns/{campaign['id']}").json()["guard"]
    assert got["hard_bounces"] == 2 and got["sends"] == 24 and got["paused_at"] is None
    live.sandbox.deliver("ada@example.com", _bounce(firsts[2]["message_id_header"]))
    live.worker.sync.sync_account(1, force=True)
    got = api.get(f"{base}/campaigns/{campaign['id']}").json()["guard"]
    assert got["paused_at"] is not None
    assert "3 of its last 24 messages hard-bounced (12%" in got["paused_reason"]
    # Its follow-ups fall due: held, saying why, never sent.
    with live.db.write() as s:
        s.execute(update(Message).where(Message.status == "scheduled")
                  .values(release_at=utcnow()))
    live.worker.wake()
    follow_ups = wait_for(lambda: (rows := api.get(
        f"{base}/messages?status=held&limit=100").json()["items"]) and len(rows) == 21
        and rows, 20)
    # The three to the bounced addresses are not sent at all (the worker may still be
    # ending the last of them when the 21 are held).
    ended = wait_for(lambda: (rows := api.get(
        f"{base}/messages?status=cancelled").json()["items"]) and len(rows) >= 3 and rows, 20)
    assert len(ended) == 3 and all("bounced" in m["error"] for m in ended)
    assert all(m["hold_kind"] == "paused" for m in follow_ups)
    assert f"campaign {campaign['id']} is paused by the sender guard" in follow_ups[0]["error"]
    assert _sent(live) == 24
    # The campaign, not the whole account: other mail still goes.
    other = api.post(f"{base}/messages", json={"to": "x@example.org", "subject": "s",
                                               "html": "h"}).json()
    _wait(live, api, other["id"], "sent")
    # A person resumes it: the 21 go.
    resumed = api.post(f"{base}/campaigns/{campaign['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["released"] == 21
    wait_for(lambda: _sent(live) == 46, 30)
    got = api.get(f"{base}/campaigns/{campaign['id']}").json()["guard"]
    assert got["paused_at"] is None and got["hard_bounces"] == 0  # counted afresh
    audit = api.get(f"{base}/audit").json()["items"]
    assert audit[0]["action"] == "resumed a paused campaign"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_pages_show_the_standing_and_turn_warm_up_and_pauses_off(live_no_worker):
    live = live_no_worker
    browser = live.browser()
    now = utcnow()
    with live.db.write() as s:
        s.execute(insert(Message), _sent_rows(1, 4100, "gmail.com", now))
    page = browser.get(f"{live.url}/dashboard").text
    assert 'data-standing-account="ada@example.com"' in page
    assert "4,100 to personal Gmail" in page
    assert re.search(r'data-domain-warning="example.com">example.com is at 4,100 of '
                     r"Gmail&#39;s 5,000", page), page[:3000]
    accounts = browser.get(f"{live.url}/accounts").text
    done = browser.post(f"{live.url}/accounts/1/warmup",
                        data={"csrf_token": _csrf(accounts), "warmup": "on"})
    assert "now warms up: 20 a day" in done.text and "warming up: 20 today" in done.text
    # A paused account says why on both pages, and the owner resumes it there.
    with live.db.write() as s:
        from scheduler.store.models import GmailAccount
        s.execute(update(GmailAccount).values(paused_at=now, paused_reason="paused by the "
                                              "sender guard: 5 of its last 40 bounced"))
    assert "5 of its last 40 bounced" in browser.get(f"{live.url}/dashboard").text
    page = browser.get(f"{live.url}/accounts").text
    assert "data-paused" in page
    resumed = browser.post(f"{live.url}/guard/account/1/resume",
                           data={"csrf_token": _csrf(page)})
    assert "Resumed: 0 held messages will go now." in resumed.text
    assert "data-paused" not in resumed.text
    assert browser.post(f"{live.url}/guard/campaign/999/resume",
                        data={"csrf_token": _csrf(page)}).status_code == 404
