"""Trust: every path that makes or changes mail is exactly once, and no error leaves a
message stuck (sandbox Google over real HTTP, a real SQLite file)."""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import select, update

from scheduler.automation import schedules
from scheduler.store import queue
from scheduler.store.db import utcnow
from scheduler.store.models import Message, Schedule
from scheduler.timing import recurring
from tests.helpers import wait_for


def _msg(live, api, mid):
    return api.get(f"{live.url}/api/v1/messages/{mid}").json()


def _queue(live, api, **body):
    resp = api.post(f"{live.url}/api/v1/messages",
                    json={"subject": "S", "html": "<p>h</p>", **body})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


# -- addresses -------------------------------------------------------------------------

def test_internationalized_domains_are_sent_as_idna(live, api):
    ids = [_queue(live, api, to="José <jose@exämple.org>"),
           _queue(live, api, to="bob@xn--exmple-cua.org")]
    for mid in ids:
        body = wait_for(lambda mid=mid: (m := _msg(live, api, mid))["status"] == "sent" and m)
        assert "xn--exmple-cua.org" in body["to"]
    heads = [email.message_from_bytes(m.raw, policy=email.policy.default)["To"]
             for m in live.sandbox.state.messages.values()]
    assert sorted(str(h) for h in heads) == ["José <jose@xn--exmple-cua.org>",
                                             "bob@xn--exmple-cua.org"]


def test_a_non_ascii_local_part_is_refused_with_the_field_everywhere(live, api):
    resp = api.post(f"{live.url}/api/v1/messages", json={
        "to": "josé@example.org", "subject": "S", "html": "h"})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "to"
    resp = api.post(f"{live.url}/api/v1/contacts", json=[{"email": "ok@example.org"},
                                                        {"email": "josé@example.org"}])
    assert resp.status_code == 422 and "[1]" in resp.json()["error"]["field"]
    report = api.post(f"{live.url}/api/v1/contacts/import",
                      data="email\nok@example.org\njosé@example.org\n".encode(),
                      headers={"Content-Type": "text/csv"}).json()
    assert report["imported"] == 1 and report["rejected"][0]["row"] == 3
    resp = api.post(f"{live.url}/api/v1/events", json={
        "id": "e1", "name": "signup", "email": "josé@example.org"})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "email"
    assert live.sandbox.sent() == []


def _stored_by_an_older_version(live, api, **values) -> str:
    """A message queued, then changed in the database as an older version could have
    stored it (what the API now refuses), and due now."""
    mid = _queue(live, api, to="x@example.org", send_at="2099-01-01T00:00:00+00:00")
    with live.db.write() as s:
        s.execute(update(Message).where(Message.id == mid).values(release_at=utcnow(),
                                                                  **values))
    live.worker.wake()
    return mid


def test_a_stored_address_that_cannot_be_sent_fails_clearly_at_release(live, api):
    """A row an older version stored with a non-ASCII local part: failed, never stuck."""
    mid = _stored_by_an_older_version(live, api, to_addr="josé@example.org")
    body = wait_for(lambda: (m := _msg(live, api, mid))["status"] == "failed" and m)
    assert "non-ASCII" in body["error"] and live.sandbox.sent() == []


# -- no message left stuck -------------------------------------------------------------

def test_a_template_that_fails_only_at_release_fails_with_its_line(live, api):
    mid = _queue(live, api, to="x@example.org", html=(
        "<p>Hi</p>\n{% if 'invalid' not in unsubscribe_url %}{{ 1 / 0 }}{% endif %}"))
    body = wait_for(lambda: (m := _msg(live, api, mid))["status"] == "failed" and m)
    assert "ZeroDivisionError" in body["error"] and "line 2" in body["error"]
    assert live.sandbox.sent() == []


def test_a_template_that_fails_at_queue_time_is_a_422_naming_the_line(live, api):
    resp = api.post(f"{live.url}/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>\n{{ 1 / 0 }}</p>"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == "html" and "line 2" in resp.json()["error"]["message"]


def test_an_unexpected_error_is_recorded_retried_and_then_failed(live, api):
    """An error the release does not expect (a header an older version stored with a line
    break): each attempt is on the timeline, then the message fails; /metrics counts it."""
    mid = _stored_by_an_older_version(live, api,
                                      in_reply_to="<a@b>\nBcc: victim@example.org")
    body = wait_for(lambda: (m := _msg(live, api, mid))["status"] == "failed" and m, 30)
    crashes = [e for e in body["events"] if e["type"] == "crashed"]
    assert len(crashes) == live.settings.max_attempts == 5
    assert all(e["detail"]["class"] == "ValueError" for e in crashes)
    assert body["error"].startswith("failed after 5 attempts; last error: ValueError")
    assert [e["type"] for e in body["events"]].count("retry_wait") == 4
    assert live.sandbox.sent() == []
    metrics = requests.get(f"{live.url}/metrics", timeout=10).text
    assert 'mailrelease_release_crashes_total{class="ValueError"}' in metrics


def test_a_message_left_sending_by_a_stopped_worker_can_be_cancelled(live_no_worker):
    live = live_no_worker
    api = live.user()
    never, begun = _queue(live, api, to="a@example.org"), _queue(live, api, to="b@example.org")
    with live.db.write() as s:
        claims = {c.message_id: c for c in queue.claim_due(s, utcnow(), 60, 10)}
        assert queue.clear_to_send(s, claims[begun], utcnow() + dt.timedelta(seconds=60))
    # While the lease lasts the worker may be sending: 409.
    assert api.post(f"{live.url}/api/v1/messages/{never}/cancel").status_code == 409
    with live.db.write() as s:
        s.execute(update(Message).values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    first = api.post(f"{live.url}/api/v1/messages/{never}/cancel")
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    second = api.post(f"{live.url}/api/v1/messages/{begun}/cancel")  # looked up in Gmail
    assert second.status_code == 200 and second.json()["status"] == "cancelled"
    assert second.json()["events"][-1]["detail"]["reconciled"] == "not in the mailbox"


def test_cancel_of_a_message_that_did_leave_finds_it_and_refuses(live_no_worker):
    from gmail_client.mime import build_message
    from scheduler.worker import ReleaseWorker
    live = live_no_worker
    api = live.user()
    mid = _queue(live, api, to="x@example.org")
    worker = ReleaseWorker(live.wiring)
    with live.db.write() as s:
        (claim,) = queue.claim_due(s, utcnow(), 60, 10)
        assert queue.clear_to_send(s, claim, utcnow() - dt.timedelta(seconds=1))
    account = worker.releaser.load_account(claim.account_id)
    raw = build_message(sender=("", "ada@example.com"), to=("", "x@example.org"),
                        subject="S", html="<p>h</p>", text="h",
                        message_id=claim.message.rfc822_id)
    worker.releaser.gmail.pooled(claim.account_id, account.token_info).send(raw)
    worker.stop()
    resp = api.post(f"{live.url}/api/v1/messages/{mid}/cancel")
    assert resp.status_code == 409 and "already sent" in resp.json()["error"]["message"]
    assert _msg(live, api, mid)["status"] == "sent"


# -- contacts --------------------------------------------------------------------------

def test_deleting_a_contact_cancels_their_open_messages(live, api):
    (contact,) = api.post(f"{live.url}/api/v1/contacts",
                          json={"email": "c@example.org"}).json()["items"]
    mid = _queue(live, api, to="c@example.org", send_at="2099-01-01T00:00:00+00:00")
    assert api.delete(f"{live.url}/api/v1/contacts/{contact['id']}").status_code == 204
    assert api.get(f"{live.url}/api/v1/contacts/{contact['id']}").status_code == 404
    assert api.delete(f"{live.url}/api/v1/contacts/{contact['id']}").status_code == 404
    body = _msg(live, api, mid)
    assert body["status"] == "cancelled" and body["contact_id"] is None
    assert body["events"][-1]["detail"]["reason"] == "the contact was deleted"
    other = live.user("eve@example.com")
    (theirs,) = other.post(f"{live.url}/api/v1/contacts",
                           json={"email": "d@example.org"}).json()["items"]
    assert api.delete(f"{live.url}/api/v1/contacts/{theirs['id']}").status_code == 404


# -- idempotency -----------------------------------------------------------------------

def test_a_retried_campaign_with_the_same_key_is_one_campaign(live_no_worker):
    live = live_no_worker
    api = live.user()
    api.post(f"{live.url}/api/v1/contacts",
             json=[{"email": f"p{n}@example.org"} for n in range(30)])
    template = api.post(f"{live.url}/api/v1/templates", json={
        "name": "t", "subject": "S", "html": "<p>h</p>"}).json()
    body = {"template_id": template["id"], "audience": "all"}
    key = {"Idempotency-Key": "campaign-2026-12-01"}
    first = api.post(f"{live.url}/api/v1/campaigns", json=body, headers=key)
    again = api.post(f"{live.url}/api/v1/campaigns", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.headers["Idempotent-Replayed"] == "false"
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert len(api.get(f"{live.url}/api/v1/campaigns").json()["items"]) == 1
    assert len(api.get(f"{live.url}/api/v1/messages?limit=100").json()["items"]) == 30
    other = api.post(f"{live.url}/api/v1/campaigns", json={**body, "name": "x"}, headers=key)
    assert other.status_code == 422 and other.json()["error"]["field"] == "Idempotency-Key"
    # Another team may use the same key for its own request.
    eve = live.user("eve@example.com")
    assert eve.post(f"{live.url}/api/v1/templates", json={
        "name": "t", "subject": "S", "html": "h"}, headers=key).status_code == 201


def test_every_creating_post_replays_its_first_answer(live_no_worker):
    live = live_no_worker
    api = live.user()
    cases = [("/messages", {"json": {"to": "x@example.org", "subject": "S", "html": "h",
                                     "send_at": "2099-01-01T00:00:00+00:00"}}),
             ("/templates", {"json": {"name": "n", "subject": "S", "html": "h"}}),
             ("/contacts", {"json": {"email": "c@example.org"}}),
             ("/contacts/import", {"data": b"email\nd@example.org\n",
                                   "headers": {"Content-Type": "text/csv"}})]
    for n, (path, kwargs) in enumerate(cases):
        headers = {**kwargs.pop("headers", {}), "Idempotency-Key": f"k{n}"}
        first = api.post(f"{live.url}/api/v1{path}", headers=headers, **kwargs)
        again = api.post(f"{live.url}/api/v1{path}", headers=headers, **kwargs)
        assert first.status_code in (200, 201), (path, first.text)
        assert again.status_code == first.status_code, (path, again.text)
        assert (again.status_code, again.json()) == (first.status_code, first.json()), path
        assert again.headers["Idempotent-Replayed"] == "true", path
    assert len(api.get(f"{live.url}/api/v1/messages").json()["items"]) == 1
    assert len(api.get(f"{live.url}/api/v1/templates").json()["items"]) == 1
    long_key = {"Idempotency-Key": "k" * 256}
    resp = api.post(f"{live.url}/api/v1/templates", headers=long_key,
                    json={"name": "m", "subject": "S", "html": "h"})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "Idempotency-Key"


def test_a_double_submitted_compose_form_queues_once(live):
    session = requests.Session()
    live.sign_in(session=session)
    page = session.get(f"{live.url}/compose").text
    key = page.split('name="form_key" value="', 1)[1].split('"', 1)[0]
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {"csrf_token": csrf, "form_key": key, "to": "x@example.org", "subject": "S",
            "html": "<p>h</p>", "when": "at", "send_at_local": "2099-01-01T09:00",
            "timezone": "UTC"}
    first = session.post(f"{live.url}/compose", data=form)
    again = session.post(f"{live.url}/compose", data=form)
    assert first.status_code == again.status_code == 200
    assert "already sent" in again.text
    with live.db.read() as s:
        assert len(s.scalars(select(Message.id)).all()) == 1


# -- events ----------------------------------------------------------------------------

def signup_burst(live, distinct: int, repeats: int, addresses: int,
                 threads: int) -> list[requests.Response]:
    """`distinct` signup events with their own ids and `repeats` sharing one id, for
    `addresses` new addresses, all at once; a rule queues a welcome for each."""
    api = live.user()
    template = api.post(f"{live.url}/api/v1/templates", json={
        "name": "w", "subject": "Welcome", "html": "<p>Hi</p>"}).json()
    api.post(f"{live.url}/api/v1/rules", json={"event": "signup",
                                                "template_id": template["id"]})
    token = api.headers["Authorization"]

    def post(n):
        return requests.post(f"{live.url}/api/v1/events", timeout=60,
                             headers={"Authorization": token}, json={
                                 "id": f"e{n}" if n >= 0 else "same", "name": "signup",
                                 "email": f"new{abs(n) % addresses}@example.org"})
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(post, [*range(distinct), *[-1] * repeats]))


def test_concurrent_events_for_new_addresses_and_one_repeated_id(live_no_worker):
    live = live_no_worker
    api = live.user()
    answers = signup_burst(live, 40, 10, 7, 16)
    assert {a.status_code for a in answers} == {202}, {a.text for a in answers}
    same = [a.json() for a in answers[40:]]
    assert all(a == same[0] for a in same) and len(same[0]["messages"]) == 1
    contacts = api.get(f"{live.url}/api/v1/contacts?limit=100").json()["items"]
    assert len(contacts) == 7
    assert len(api.get(f"{live.url}/api/v1/messages?limit=100").json()["items"]) == 41


# -- recurring sends -------------------------------------------------------------------

def _schedule(live, api, **extra) -> int:
    template = api.post(f"{live.url}/api/v1/templates", json={
        "name": f"d{len(extra)}{json.dumps(extra)}", "subject": "Daily",
        "html": "<p>{{ occurrence }}</p>"}).json()
    resp = api.post(f"{live.url}/api/v1/schedules", json={
        "cron": "0 9 * * *", "template_id": template["id"], "to": "r@example.org", **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _after_downtime(live, schedule_id: int, days: int) -> list[Message]:
    now = utcnow()
    # Down `days` days: that many 09:00 occurrences passed, every one long ago enough to
    # be missed (a maximum lateness of one second).
    with live.db.write() as s:
        s.execute(update(Schedule).where(Schedule.id == schedule_id).values(
            next_at=recurring.next_after("0 9 * * *", "UTC", now - dt.timedelta(days=days))))
    schedules.queue_due(live.db, now, dt.timedelta(seconds=1))
    with live.db.read() as s:
        return s.scalars(select(Message).where(Message.schedule_id == schedule_id)
                         .order_by(Message.created_at)).all()


def test_a_daily_send_after_ten_days_down_sends_the_latest_only(live_no_worker):
    live = live_no_worker
    api = live.user()
    made = _after_downtime(live, _schedule(live, api), 10)
    missed = [m for m in made if m.status == "scheduled" and m.release_at <= utcnow()]
    assert len(missed) == 1  # not ten copies
    first = _msg(live, api, missed[0].id)["events"][0]["detail"]
    assert first["caught_up"] is True


def test_a_schedule_can_send_all_missed_or_hold_them(live_no_worker):
    live = live_no_worker
    api = live.user()
    every = _after_downtime(live, _schedule(live, api, catch_up="all"), 10)
    assert len([m for m in every if m.release_at <= utcnow()]) == 10
    held = _after_downtime(live, _schedule(live, api, catch_up="hold"), 10)
    late = [m for m in held if m.status == "held"]
    assert len(late) == 10 and {m.hold_kind for m in late} == {"too_late"}
    bad = api.post(f"{live.url}/api/v1/schedules", json={
        "cron": "0 9 * * *", "template_id": 1, "to": "r@example.org", "catch_up": "some"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "catch_up"


def test_a_second_round_of_the_same_occurrences_makes_no_second_message(live_no_worker):
    live = live_no_worker
    api = live.user()
    schedule_id = _schedule(live, api)
    made = _after_downtime(live, schedule_id, 3)
    # As if another worker had read the same next_at before this one moved it.
    with live.db.write() as s:
        s.execute(update(Schedule).where(Schedule.id == schedule_id).values(
            next_at=recurring.next_after("0 9 * * *", "UTC",
                                         utcnow() - dt.timedelta(days=3))))
    with live.db.write() as s:  # now with the policy that would make each of them again
        s.execute(update(Schedule).where(Schedule.id == schedule_id).values(catch_up="all"))
    again = schedules.queue_due(live.db, utcnow(), dt.timedelta(seconds=1))
    assert again == 0
    with live.db.read() as s:
        assert len(s.scalars(select(Message.id).where(
            Message.schedule_id == schedule_id)).all()) == len(made)


# -- drafts ----------------------------------------------------------------------------

def test_a_draft_waits_until_it_is_scheduled(live, api):
    mid = _queue(live, api, to="x@example.org", draft=True)
    assert _msg(live, api, mid)["status"] == "draft"
    edited = api.patch(f"{live.url}/api/v1/messages/{mid}", json={"subject": "T"}).json()
    assert edited["status"] == "draft"
    live.worker.run_once(wait=True)
    assert live.sandbox.sent() == []
    assert api.post(f"{live.url}/api/v1/messages/{mid}/send-now").status_code == 200
    wait_for(lambda: _msg(live, api, mid)["status"] == "sent")
    assert len(live.sandbox.sent()) == 1


def test_hostile_templates_are_422s_naming_the_part_and_queue_nothing(live_no_worker):
    from tests.unit.test_budget import HOSTILE
    live = live_no_worker
    api = live.user()
    for name, html in HOSTILE.items():
        for path in ("/messages", "/templates/preview"):
            body = {"subject": "S", "html": html}
            if path == "/messages":
                body["to"] = "x@example.org"
            resp = api.post(f"{live.url}/api/v1{path}", json=body)
            assert resp.status_code == 422, (name, path, resp.status_code, resp.text[:200])
            assert resp.json()["error"]["field"] == "html", (name, resp.text)
    assert api.get(f"{live.url}/api/v1/messages").json()["items"] == []
