"""Events accepted at once (Prefer: respond-async) and in batches, each exactly once: the
answer before the rules run, GET /events/{id} for the outcome, and a worker that runs what
a web process left pending."""
from __future__ import annotations

import json

import requests
from sqlalchemy import select

from scheduler.automation import events
from scheduler.automation.events import sign
from scheduler.store.db import utcnow
from scheduler.store.models import Event, Message
from tests.helpers import wait_for
from tests.integration.test_events import _setup

ASYNC = {"Prefer": "respond-async"}


def _rule(live, api, template_id, event="signup", **extra):
    resp = api.post(f"{live.url}/api/v1/rules", json={"event": event,
                                                      "template_id": template_id, **extra})
    assert resp.status_code == 201, resp.text


def test_an_event_accepted_at_once_runs_its_rules_after_the_answer_once(live):
    api, _, welcome, _ = _setup(live)
    _rule(live, api, welcome["id"])
    event = {"id": "a1", "name": "signup", "email": "new@example.org"}
    first = api.post(f"{live.url}/api/v1/events", json=event, headers=ASYNC)
    assert first.status_code == 202, first.text
    assert first.headers["Preference-Applied"] == "respond-async"
    body = first.json()
    assert body["status"] == "pending" and body["messages"] == []
    assert first.headers["Location"] == f"/api/v1/events/{body['event_id']}"
    done = wait_for(lambda: (got := api.get(f"{live.url}/api/v1/events/{body['event_id']}")
                             .json())["status"] == "done" and got, 10)
    assert done["id"] == "a1" and done["name"] == "signup" and len(done["messages"]) == 1
    wait_for(lambda: api.get(f"{live.url}/api/v1/messages/{done['messages'][0]}").json()
             ["status"] == "sent", 10)
    again = api.post(f"{live.url}/api/v1/events", json=event, headers=ASYNC)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["messages"] == done["messages"] and again.json()["status"] == "done"
    plain = api.post(f"{live.url}/api/v1/events", json=event)  # and without Prefer
    assert plain.json()["messages"] == done["messages"]
    assert len(live.sandbox.sent()) == 1


def test_a_pending_event_is_a_409_to_a_plain_request_and_invisible_to_other_teams(live):
    api, _, welcome, _ = _setup(live)
    with live.db.write() as s:  # accepted, and its process stopped before running it
        row, _ = events.accept_event(s, 1, None, {"id": "p1", "name": "signup",
                                                  "email": "x@example.org", "data": {},
                                                  "occurred_at": None}, utcnow())
        event_id = row.id
    plain = api.post(f"{live.url}/api/v1/events",
                     json={"id": "p1", "name": "signup", "email": "x@example.org"})
    assert plain.status_code == 409 and plain.headers["Retry-After"] == "1"
    assert api.get(f"{live.url}/api/v1/events/{event_id}").json()["status"] == "pending"
    other = live.user("grace@example.org")
    assert other.get(f"{live.url}/api/v1/events/{event_id}").status_code == 404
    assert api.get(f"{live.url}/api/v1/events/999999").status_code == 404
    # The worker's sweep runs it (the web process that accepted it never did).
    _rule(live, api, welcome["id"])
    live.worker._events()
    got = api.get(f"{live.url}/api/v1/events/{event_id}").json()
    assert got["status"] == "done" and len(got["messages"]) == 1


def test_a_batch_answers_each_event_in_order_and_one_refused_stops_nothing(live):
    api, _, welcome, secret = _setup(live)
    _rule(live, api, welcome["id"])
    batch = {"events": [
        {"id": "b1", "name": "signup", "email": "one@example.org"},
        {"id": "b2", "name": "signup", "email": "not an address"},
        {"id": "b3", "name": "signup", "email": "three@example.org"},
        "not an event",
        {"id": "b1", "name": "signup", "email": "one@example.org"}]}
    data = json.dumps(batch).encode()
    resp = requests.post(f"{live.url}/api/v1/events/batch", data=data, timeout=30,
                         headers={"X-Mailrelease-Signature": sign(secret, data),
                                  "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert [i["index"] for i in items] == [0, 1, 2, 3, 4]
    assert [i["status_code"] for i in items] == [202, 422, 202, 422, 202]
    assert items[1]["error"]["field"] == "email" and items[1]["id"] == "b2"
    assert len(items[0]["answer"]["messages"]) == 1 and not items[0]["replayed"]
    assert items[4]["replayed"] and items[4]["answer"] == items[0]["answer"]
    again = api.post(f"{live.url}/api/v1/events/batch", json=batch).json()["items"]
    assert all(i["replayed"] for i in again if i["status_code"] == 202)
    with live.db.read() as s:
        assert len(s.scalars(select(Message)).all()) == 2
    too_many = api.post(f"{live.url}/api/v1/events/batch", json={"events": [
        {"id": f"x{n}", "name": "signup", "email": "a@example.org"} for n in range(501)]})
    assert too_many.status_code == 422 and "events" in too_many.text


def test_an_accepted_batch_is_stored_in_one_go_and_run_after(live):
    api, _, welcome, _ = _setup(live)
    _rule(live, api, welcome["id"])
    batch = {"events": [{"id": f"c{n}", "name": "signup", "email": f"p{n}@example.org"}
                        for n in range(50)]}
    resp = api.post(f"{live.url}/api/v1/events/batch", json=batch, headers=ASYNC)
    items = resp.json()["items"]
    assert resp.status_code == 200 and {i["status_code"] for i in items} == {202}
    ids = [i["answer"]["event_id"] for i in items]
    wait_for(lambda: all(api.get(f"{live.url}/api/v1/events/{n}").json()["status"] == "done"
                         for n in ids), 20)
    wait_for(lambda: len(live.sandbox.sent()) == 50, 30)
    with live.db.read() as s:
        assert len(s.scalars(select(Message)).all()) == 50
        assert {e.status for e in s.scalars(select(Event))} == {"done"}
