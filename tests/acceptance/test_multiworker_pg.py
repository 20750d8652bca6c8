"""Acceptance on PostgreSQL: several real `mailrelease worker` processes share every timer
(A/B decisions, recurring occurrences, follow-up steps), and a database outage during a
burst costs seconds, not leases or "delivery unknown" holds."""
from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import time

from sqlalchemy import func, select, update

from scheduler.store.db import utcnow
from scheduler.store.models import Campaign, Message, Schedule
from scheduler.timing import recurring
from tests.acceptance.test_crash import queue_messages, statuses
from tests.helpers import start_worker, wait_for, worker_env
from tests.integration.test_trust import signup_burst


def _workers(live, tmp_path, n=3, **env):
    # No pacing and no daily cap: these tests are about who decides, not about Gmail's limits.
    envs = worker_env(live, MAILRELEASE_SENDS_PER_SECOND="0", MAILRELEASE_POLL_SECONDS="0.5",
                      MAILRELEASE_DAILY_CAP="100000", **env)
    return [start_worker(envs, tmp_path / f"worker{i}.log") for i in range(n)]


def _stop(procs):
    for proc in procs:
        proc.terminate()
    for proc in procs:
        assert proc.wait(timeout=60) == 0


def _until_sent(live, tmp_path, count: int, timeout: float) -> None:
    """Three worker processes, stopped once `count` messages are sent."""
    procs = _workers(live, tmp_path)
    try:
        wait_for(lambda: statuses(live).get("sent", 0) >= count, timeout, 0.5)
    finally:
        _stop(procs)


def _sent_once(live, count: int) -> None:
    """Gmail holds `count` messages, no Message-ID twice."""
    sent = live.sandbox.sent()
    assert len(sent) == count and len({m["messageId"] for m in sent}) == count


def _one_each(live, query) -> collections.Counter:
    """How many messages each key of `query` (a select of one column) has."""
    with live.db.read() as s:
        return collections.Counter(s.scalars(query).all())


def test_three_workers_decide_an_ab_test_once_and_mail_each_contact_once(serve, pg_url,
                                                                         tmp_path):
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url)
    api = live.user()
    contacts = [{"email": f"p{n}@example.org"} for n in range(3000)]
    assert api.post(f"{live.url}/api/v1/contacts", json=contacts).status_code == 201
    a = api.post(f"{live.url}/api/v1/templates", json={
        "name": "A", "subject": "A", "html": "<p>a</p>"}).json()
    b = api.post(f"{live.url}/api/v1/templates", json={
        "name": "B", "subject": "B", "html": "<p>b</p>"}).json()
    campaign = api.post(f"{live.url}/api/v1/campaigns", json={
        "variants": [{"key": "A", "template_id": a["id"]}, {"key": "B", "template_id": b["id"]}],
        "ab": {"test_fraction": 0.1, "decide_after_seconds": 0}}).json()
    assert campaign["status"] == "testing" and campaign["counts"]["queued"] == 300
    # Three workers start together: each one's first round finds the decision due.
    _until_sent(live, tmp_path, 3000, 240)
    per_contact = _one_each(live, select(Message.contact_id).where(
        Message.campaign_id == campaign["id"]))
    assert len(per_contact) == 3000 and set(per_contact.values()) == {1}
    _sent_once(live, 3000)
    with live.db.read() as s:
        row = s.get(Campaign, campaign["id"])
        assert row.status == "done" and row.counts["queued"] == 3000
        assert not row.pending


def test_three_workers_queue_each_recurring_occurrence_once(serve, pg_url, tmp_path):
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url)
    api = live.user()
    template = api.post(f"{live.url}/api/v1/templates", json={
        "name": "tick", "subject": "Tick {{ occurrence }}", "html": "<p>t</p>"}).json()
    ids = []
    for n in range(5):
        made = api.post(f"{live.url}/api/v1/schedules", json={
            "cron": "* * * * *", "template_id": template["id"], "to": f"r{n}@example.org",
            "catch_up": "all"}).json()
        ids.append(made["id"])
    # Twenty minutes of occurrences fell due while no worker ran: all of them go (the
    # schedules say "all"), each exactly once, whichever worker gets there first.
    start = utcnow() - dt.timedelta(minutes=20)
    with live.db.write() as s:
        s.execute(update(Schedule).values(next_at=recurring.next_after(
            "* * * * *", "UTC", start), occurrences=0))
        s.execute(Message.__table__.delete())
    _until_sent(live, tmp_path, 5 * 20, 120)
    per_occurrence = _one_each(live, select(Message.origin_key).where(
        Message.schedule_id.in_(ids)))
    assert set(per_occurrence.values()) == {1}
    with live.db.read() as s:
        for schedule_id in ids:
            count = s.scalar(select(func.count()).select_from(Message).where(
                Message.schedule_id == schedule_id))
            assert count == s.get(Schedule, schedule_id).occurrences >= 20
    assert len(live.sandbox.sent()) == len({m["messageId"] for m in live.sandbox.sent()})


def test_three_workers_send_each_follow_up_step_once(serve, pg_url, tmp_path):
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url)
    api = live.user()
    api.post(f"{live.url}/api/v1/contacts",
             json=[{"email": f"f{n}@example.org"} for n in range(300)])
    first = api.post(f"{live.url}/api/v1/templates", json={
        "name": "1", "subject": "First", "html": "<p>1</p>"}).json()
    campaign = api.post(f"{live.url}/api/v1/campaigns", json={
        "template_id": first["id"], "follow_ups": [
            {"after_seconds": 2, "unless": "reply", "subject": "Second",
             "html": "<p>2</p>"}]}).json()
    _until_sent(live, tmp_path, 600, 180)
    per_step = _one_each(live, select(Message.origin_key).where(
        Message.campaign_id == campaign["id"]))
    assert len(per_step) == 600 and set(per_step.values()) == {1}
    _sent_once(live, 600)


def test_concurrent_events_for_new_addresses_on_postgres(serve, pg_url):
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url)
    answers = signup_burst(live, 80, 20, 10, 20)
    codes = collections.Counter(a.status_code for a in answers)
    assert set(codes) <= {202, 409}, {a.text for a in answers if a.status_code >= 400}
    assert codes[202] >= 81  # every distinct id, and the repeated one at least once
    for late in (a for a in answers if a.status_code == 409):
        assert late.headers["Retry-After"] == "1"  # "in flight": ask again
    same = {tuple(a.json()["messages"]) for a in answers[80:] if a.status_code == 202}
    assert len(same) == 1
    with live.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 81


def test_a_database_outage_mid_burst_resumes_in_seconds_without_doubt(serve, pg_url,
                                                                      pg_outage, tmp_path):
    """Claims a worker could not finish because the database went away were never sent:
    they go back as not sent (no reconcile, so no "delivery unknown" on a send-only grant)
    and go out soon after the database returns."""
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url,
                 MAILRELEASE_GMAIL_SCOPES="send-only")
    senders = [f"user{n}@example.com" for n in range(3)]
    for email in senders:
        live.sign_in(email)
    live.sandbox.configure(send_latency=0.01)
    ids = queue_messages(live, senders, 600)
    live.db.dispose()
    procs = _workers(live, tmp_path, n=2, MAILRELEASE_LEASE_SECONDS="120")
    try:
        wait_for(lambda: live.sandbox.count() >= 100, 60, 0.02)
        pg_outage.stop()
        down_at = live.sandbox.count()
        # Down until a worker has failed to finish a claim because of it.
        logs = [tmp_path / f"worker{i}.log" for i in range(2)]
        wait_for(lambda: any("release_crashed" in log.read_text() for log in logs), 60, 0.1)
        pg_outage.start()
        back = time.monotonic()
        # Well within the 120 s lease: the claims were given back, not left to expire.
        wait_for(lambda: statuses(live).get("sent", 0) == 600, 60, 0.2)
        print(f"all sent {time.monotonic() - back:.1f} s after the database returned")
    finally:
        for proc in procs:
            os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    assert down_at < 600  # the outage came mid-burst
    counts = statuses(live)
    assert counts == {"sent": 600}, counts
    _sent_once(live, 600)
    with live.db.read() as s:
        held = s.scalar(select(func.count()).select_from(Message).where(
            Message.hold_kind == "delivery_unknown"))
    assert held == 0 and len(ids) == 600
