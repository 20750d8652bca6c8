"""Events (signed webhooks) and the rules they trigger, through the REST API."""
from __future__ import annotations

import json
import time

import requests

from scheduler.automation.events import sign
from tests.helpers import wait_for


def _setup(live):
    api = live.user()
    reminder = api.post(f"{live.url}/api/v1/templates", json={
        "name": "cart", "subject": "Your cart, {{ name | default('friend') }}",
        "html": "<p>{{ data_total | default('') }}</p>"}).json()
    welcome = api.post(f"{live.url}/api/v1/templates", json={
        "name": "welcome", "subject": "Welcome", "html": "<p>Hi</p>"}).json()
    secret = api.get(f"{live.url}/api/v1/webhook-secret").json()["secret"]
    return api, reminder, welcome, secret


def _post(live, secret, body: dict, *, at: int | None = None, raw: bytes | None = None,
          signature: str | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Mailrelease-Signature"] = signature or sign(secret, data, at)
    return requests.post(f"{live.url}/api/v1/events", data=data, headers=headers, timeout=10)


def test_a_signed_cart_event_queues_a_delayed_reminder_that_a_purchase_cancels(live):
    api, reminder, _, secret = _setup(live)
    rule = api.post(f"{live.url}/api/v1/rules", json={
        "event": "cart_abandoned", "template_id": reminder["id"], "delay_seconds": 3600,
        "cancel_on": ["purchase"],
        "conditions": [{"field": "data.total", "op": "greater", "value": 10}]})
    assert rule.status_code == 201, rule.text
    cart = {"id": "evt-1", "name": "cart_abandoned", "email": "Buyer@Example.org",
            "data": {"total": 42}}
    first = _post(live, secret, cart)
    assert first.status_code == 202, first.text
    (mid,) = first.json()["messages"]
    queued = api.get(f"{live.url}/api/v1/messages/{mid}").json()
    assert queued["status"] == "scheduled" and queued["to"] == "buyer@example.org"
    assert _post(live, secret, cart).json() == first.json()  # a repeat queues nothing
    small = _post(live, secret, {**cart, "id": "evt-2", "data": {"total": 5}})
    assert small.json()["messages"] == []  # the condition does not hold
    contacts = api.get(f"{live.url}/api/v1/contacts?email=buyer@example.org").json()
    assert contacts["items"], "an unknown address becomes a contact"
    bought = _post(live, secret, {"id": "evt-3", "name": "purchase",
                                  "email": "buyer@example.org"})
    assert bought.json()["cancelled"] == [mid]
    assert api.get(f"{live.url}/api/v1/messages/{mid}").json()["status"] == "cancelled"
    assert live.sandbox.sent() == []


def test_webhook_requests_that_are_refused(live):
    _, reminder, _, secret = _setup(live)
    body = {"id": "e", "name": "signup", "email": "a@example.org"}
    raw = json.dumps(body).encode()
    assert _post(live, None, body).status_code == 401  # unsigned
    forged = _post(live, "whsec_not_the_secret", body)
    assert forged.status_code == 401
    stale = _post(live, secret, body, at=int(time.time()) - 301)
    assert stale.status_code == 401 and "older" in stale.json()["error"]["message"]
    malformed = _post(live, secret, {}, raw=b'{"id": "x", ')
    assert malformed.status_code == 400
    nameless = _post(live, secret, {"id": "e2", "email": "a@example.org"})
    assert nameless.status_code == 422 and nameless.json()["error"]["field"] == "name"
    bad_email = _post(live, secret, {"id": "e3", "name": "x", "email": "nope"})
    assert bad_email.status_code == 422 and bad_email.json()["error"]["field"] == "email"
    big = _post(live, secret, {**body, "data": {"blob": "x" * 70_000}})
    assert big.status_code == 413
    tampered = _post(live, secret, body, raw=raw.replace(b"signup", b"signuq"),
                     signature=sign(secret, raw))
    assert tampered.status_code == 401


def test_no_delay_is_sent_at_once_and_the_frequency_cap_holds(live):
    api, _, welcome, secret = _setup(live)
    api.post(f"{live.url}/api/v1/rules", json={
        "event": "signup", "template_id": welcome["id"],
        "frequency_cap": {"max": 1, "seconds": 86400}})
    (mid,) = _post(live, secret, {"id": "s1", "name": "signup",
                                  "email": "n@example.org"}).json()["messages"]
    body = wait_for(lambda: (b := api.get(f"{live.url}/api/v1/messages/{mid}").json())
                    ["status"] == "sent" and b)
    assert body["subject"] == "Welcome"
    again = _post(live, secret, {"id": "s2", "name": "signup", "email": "n@example.org"})
    assert again.json()["messages"] == []
    metrics = requests.get(f"{live.url}/metrics", timeout=10).text
    assert "mailrelease_event_to_send_seconds_count" in metrics
    (rule,) = api.get(f"{live.url}/api/v1/rules").json()["items"]
    assert rule["stats"]["queued"] == 1 and rule["stats"]["sent"] == 1
    assert rule["stats"]["rates"]["opened"] == 0.0


def test_a_rotated_secret_keeps_the_old_one_valid_for_a_while(live):
    api, _, welcome, secret = _setup(live)
    rotated = api.post(f"{live.url}/api/v1/webhook-secret/rotate").json()
    assert rotated["secret"] != secret and rotated["previous_valid_until"]
    assert _post(live, secret, {"id": "r1", "name": "x", "email": "a@example.org"}) \
        .status_code == 202
    assert _post(live, rotated["secret"], {"id": "r2", "name": "x",
                                           "email": "a@example.org"}).status_code == 202


def test_rules_are_checked_and_scoped_to_the_team(live):
    api, reminder, _, _ = _setup(live)
    bad = api.post(f"{live.url}/api/v1/rules", json={
        "event": "x", "template_id": reminder["id"],
        "conditions": [{"field": "total", "op": "greater", "value": 1}]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "conditions[0].field"
    other = live.user("bob@example.com")
    assert other.post(f"{live.url}/api/v1/rules", json={
        "event": "x", "template_id": reminder["id"]}).status_code == 404
    made = api.post(f"{live.url}/api/v1/rules", json={"event": "x",
                                                      "template_id": reminder["id"]}).json()
    assert other.get(f"{live.url}/api/v1/rules/{made['id']}").status_code == 404
    assert [r["id"] for r in api.get(f"{live.url}/api/v1/rules").json()["items"]] == \
        [made["id"]]


def test_a_contact_in_tokyo_asked_for_0900_is_released_at_the_next_0900_there(live):
    import datetime as dt
    from zoneinfo import ZoneInfo
    api = live.user()
    api.post(f"{live.url}/api/v1/contacts", json={"email": "k@example.jp",
                                                  "timezone": "Asia/Tokyo"})
    resp = api.post(f"{live.url}/api/v1/messages", json={
        "to": "k@example.jp", "subject": "Ohayo", "html": "<p>x</p>",
        "local_time": {"time": "09:00"}})
    assert resp.status_code == 201, resp.text
    release = dt.datetime.fromisoformat(resp.json()["release_at"]).astimezone(
        ZoneInfo("Asia/Tokyo"))
    now = dt.datetime.now(ZoneInfo("Asia/Tokyo"))
    assert (release.hour, release.minute) == (9, 0)
    assert dt.timedelta(0) < release - now <= dt.timedelta(hours=24)
    nozone = api.post(f"{live.url}/api/v1/messages", json={
        "to": "nz@example.org", "subject": "s", "html": "h", "local_time": {"time": "09:00"}})
    assert nozone.status_code == 422 and nozone.json()["error"]["field"] == "local_time"
    best = api.post(f"{live.url}/api/v1/messages", json={
        "to": "k@example.jp", "subject": "s", "html": "h", "best_hour": True}).json()
    assert "too little" in best["events"][0]["detail"]["timing"]


def test_seeded_cart_rules_queue_two_reminders_that_a_purchase_cancels(live, api):
    seeded = api.post(f"{live.url}/api/v1/rules", json={"seed": "abandoned-cart"})
    assert seeded.status_code == 201, seeded.text
    assert [r["delay_seconds"] for r in seeded.json()["items"]] == [3600, 86400]
    secret = api.get(f"{live.url}/api/v1/webhook-secret").json()["secret"]
    cart = {"id": "c1", "name": "cart_abandoned", "email": "shopper@example.org",
            "data": {"cart_url": "https://shop.example/cart",
                     "items": [{"name": "Shoes", "price": "$80"}]}}
    queued = _post(live, secret, cart).json()["messages"]
    assert len(queued) == 2
    statuses = [api.get(f"{live.url}/api/v1/messages/{m}").json()["status"] for m in queued]
    assert statuses == ["scheduled", "scheduled"]
    cancelled = _post(live, secret, {"id": "p1", "name": "purchase",
                                     "email": "shopper@example.org"}).json()["cancelled"]
    assert sorted(cancelled) == sorted(queued)
    for key in ("browse-abandonment", "welcome", "post-purchase", "re-engagement"):
        assert api.post(f"{live.url}/api/v1/rules", json={"seed": key}).status_code == 201


def test_a_cron_schedule_makes_one_message_per_occurrence_once(live):
    import datetime as dt

    from scheduler.automation import schedules
    from scheduler.store.db import utcnow
    api, _, welcome, _ = _setup(live)
    bad = api.post(f"{live.url}/api/v1/schedules", json={
        "cron": "every monday", "template_id": welcome["id"], "to": "r@example.org"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cron"
    daily = api.post(f"{live.url}/api/v1/schedules", json={
        "cron": "0 9 * * *", "timezone": "Asia/Tokyo", "template_id": welcome["id"],
        "to": "r@example.org"}).json()
    next_at = dt.datetime.fromisoformat(daily["next_at"])
    assert (next_at.hour, next_at.minute) == (0, 0)  # 09:00 in Tokyo
    minutely = api.post(f"{live.url}/api/v1/schedules", json={
        "cron": "* * * * *", "template_id": welcome["id"], "to": "r@example.org"})
    assert minutely.status_code == 201, minutely.text
    assert schedules.queue_due(live.db, utcnow()) == 0  # already queued, not twice
    items = api.get(f"{live.url}/api/v1/messages?limit=50").json()["items"]
    times = sorted(dt.datetime.fromisoformat(m["release_at"]) for m in items)
    assert len(times) == minutely.json()["occurrences"] >= 4
    assert all(b - a == dt.timedelta(minutes=1) for a, b in zip(times[1:], times[2:], strict=False))
    stopped = api.delete(f"{live.url}/api/v1/schedules/{minutely.json()['id']}").json()
    assert stopped["active"] is False
    before = minutely.json()["occurrences"]
    schedules.queue_due(live.db, utcnow() + dt.timedelta(minutes=10))
    assert api.get(f"{live.url}/api/v1/schedules/{minutely.json()['id']}").json()[
        "occurrences"] == before  # a stopped schedule queues nothing more
