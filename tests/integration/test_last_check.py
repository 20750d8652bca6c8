"""The last look at a thread before a follow-up: a reply the mailbox sync has not read yet
(its round is an hour away, or its notification was lost) still stops the next step; an
automatic answer does not; a reply from a colleague in the thread does."""
from __future__ import annotations

import uuid

from sqlalchemy import update

from scheduler.store.db import utcnow
from scheduler.store.models import Message


def _answer(live, original: str, sender: str, subject: str, **headers) -> None:
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    live.sandbox.deliver("ada@example.com", (
        f"From: {sender}\r\nTo: ada@example.com\r\nSubject: {subject}\r\n"
        f"In-Reply-To: {original}\r\nReferences: {original}\r\n{extra}\r\nThanks\r\n"))


def campaign(live, api, people: list[str], unless: str = "reply",
             follow_ups: list[dict] | None = None) -> None:
    """`people` as contacts, a template, and a campaign to them with `follow_ups` (by
    default one "Following up" three days on, stopped as `unless` says)."""
    api.post(f"{live.url}/api/v1/contacts", json=[{"email": p} for p in people])
    tid = api.post(f"{live.url}/api/v1/templates", json={
        "name": f"t-{uuid.uuid4().hex[:8]}", "subject": "News", "html": "<p>Hi</p>"}).json()["id"]
    made = api.post(f"{live.url}/api/v1/campaigns", json={
        "template_id": tid, "audience": {"contact_ids": [
            c["id"] for c in api.get(f"{live.url}/api/v1/contacts?limit=100").json()["items"]
            if c["email"] in people]},
        "follow_ups": follow_ups or [{"after_seconds": 3 * 86400, "unless": unless,
                                      "subject": "Following up"}]})
    assert made.status_code == 201, made.text


def follow_ups_due(live) -> None:
    """Days pass: every follow-up falls due now."""
    with live.db.write() as s:
        s.execute(update(Message).where(Message.follows_id.is_not(None))
                  .values(release_at=utcnow()))


def test_a_reply_not_yet_synced_stops_the_follow_up_and_an_out_of_office_does_not(
        live_no_worker):
    from scheduler.worker import ReleaseWorker
    live = live_no_worker
    api = live.user()
    people = ["r1@example.org", "r2@example.org", "r3@example.org", "r4@example.org"]
    campaign(live, api, people)
    worker = ReleaseWorker(live.wiring)
    try:
        worker.run_once(wait=True)
        first = {m["to"]: m["messageId"] for m in live.sandbox.sent()}
        assert set(first) == set(people)
        _answer(live, first["r1@example.org"], "r1@example.org", "Re: News")
        _answer(live, first["r2@example.org"], "r2@example.org",
                "Automatische Antwort: News", Auto_Submitted="auto-replied")
        # The mail was forwarded: a colleague answers in the same thread.
        _answer(live, first["r3@example.org"], "Boss <boss@example.org>", "Re: News")
        # No sync round runs (MAILRELEASE_SYNC_SECONDS is an hour): three days later the
        # follow-ups fall due.
        follow_ups_due(live)
        worker.run_once(wait=True)
    finally:
        worker.stop()
    followed = sorted(m["to"] for m in live.sandbox.sent() if m["subject"] == "Following up")
    assert followed == ["r2@example.org", "r4@example.org"]
    stopped = api.get(f"{live.url}/api/v1/messages?status=cancelled").json()["items"]
    assert sorted(m["to"] for m in stopped) == ["r1@example.org", "r3@example.org"]
    reasons = {m["to"]: m["error"] for m in stopped}
    assert "boss@example.org replied to the previous step" in reasons["r3@example.org"]
    assert "last look at the thread" in reasons["r1@example.org"]
    # The reply is on the first step's timeline too, saying who found it.
    step = next(m for m in api.get(f"{live.url}/api/v1/messages?status=sent&limit=10")
                .json()["items"] if m["to"] == "r1@example.org" and m["subject"] == "News")
    replied = [e for e in step["events"] if e["type"] == "replied"]
    assert replied and replied[0]["detail"]["found_by"] == "last check"


def test_gmail_failing_the_last_look_retries_the_follow_up_instead_of_sending_blind(
        live_no_worker):
    from scheduler.worker import ReleaseWorker
    live = live_no_worker
    api = live.user()
    campaign(live, api, ["r1@example.org"])
    worker = ReleaseWorker(live.wiring)
    try:
        worker.run_once(wait=True)
        assert live.sandbox.count() == 1
        # Reads are retried twice by the client library: three 503s in a row.
        live.sandbox.fault(method="threads.get", status=503, times=3)
        follow_ups_due(live)
        worker.run_once(wait=True)
    finally:
        worker.stop()
    assert live.sandbox.count() == 1
    step = api.get(f"{live.url}/api/v1/messages?status=retry_wait").json()["items"]
    assert len(step) == 1 and "503" in step[0]["error"]


def _new_mail(live, sender: str) -> None:
    live.sandbox.deliver("ada@example.com", f"From: {sender}\r\nTo: ada@example.com\r\n"
                                            f"Subject: A question\r\n\r\nHello\r\n")


def test_stop_when_they_or_anyone_at_their_company_write_in_any_thread(live_no_worker):
    from scheduler.worker import ReleaseWorker
    live = live_no_worker
    api = live.user()
    campaign(live, api, ["ann@acme.example", "bob@acme.example", "carl@gmail.com",
                         "dora@other.example"], "domain")
    campaign(live, api, ["erin@else.example"], "person")
    worker = ReleaseWorker(live.wiring)
    try:
        worker.run_once(wait=True)
        assert live.sandbox.count() == 5
        # Ann writes a new mail (no thread of ours): everyone at acme.example stops;
        # a stranger at gmail.com stops nobody (gmail.com is not a company).
        _new_mail(live, "Ann <ann@acme.example>")
        _new_mail(live, "zed@gmail.com")
        worker.sync.sync_account(1, force=True)
        stopped = {m["to"]: m["error"] for m in api.get(
            f"{live.url}/api/v1/messages?status=cancelled").json()["items"]}
        assert set(stopped) == {"ann@acme.example", "bob@acme.example"}
        assert "someone at acme.example wrote to us (ann@acme.example)" in \
            stopped["bob@acme.example"]
        # Erin writes too, but no sync reads it: the last look at the mailbox does.
        _new_mail(live, "erin@else.example")
        follow_ups_due(live)
        worker.run_once(wait=True)
    finally:
        worker.stop()
    followed = sorted(m["to"] for m in live.sandbox.sent() if m["subject"] == "Following up")
    assert followed == ["carl@gmail.com", "dora@other.example"]
    erin = next(m for m in api.get(f"{live.url}/api/v1/messages?status=cancelled")
                .json()["items"] if m["to"] == "erin@else.example")
    assert "erin@else.example wrote to us since the previous step (found by the last " \
           "look at the mailbox" in erin["error"]


def test_an_out_of_office_with_a_return_date_postpones_the_steps_that_ask_for_it(
        live_no_worker):
    import datetime as dt

    from scheduler.worker import ReleaseWorker
    live = live_no_worker
    api = live.user()
    people = ["r1@example.org", "r2@example.org", "r3@example.org"]
    api.post(f"{live.url}/api/v1/contacts", json=[{"email": p} for p in people])
    tid = api.post(f"{live.url}/api/v1/templates", json={
        "name": "t", "subject": "News", "html": "<p>Hi</p>"}).json()["id"]
    for who, ooo in (("r1@example.org", "postpone"), ("r2@example.org", "ignore"),
                     ("r3@example.org", "postpone")):
        ids = [c["id"] for c in api.get(f"{live.url}/api/v1/contacts").json()["items"]
               if c["email"] == who]
        api.post(f"{live.url}/api/v1/campaigns", json={
            "template_id": tid, "audience": {"contact_ids": ids},
            "follow_ups": [{"after_seconds": 86400, "out_of_office": ooo,
                            "subject": "Following up"}]})
    worker = ReleaseWorker(live.wiring)
    try:
        worker.run_once(wait=True)
        first = {m["to"]: m["messageId"] for m in live.sandbox.sent()}
        back = (utcnow() + dt.timedelta(days=10)).date()
        for who in ("r1@example.org", "r2@example.org"):
            _answer(live, first[who], who, "Automatische Antwort: News",
                    Auto_Submitted="auto-replied")
        live.sandbox.deliver("ada@example.com", (
            f"From: r1@example.org\r\nTo: ada@example.com\r\nSubject: Out of office\r\n"
            f"In-Reply-To: {first['r1@example.org']}\r\nAuto-Submitted: auto-replied\r\n"
            f"\r\nI am out of the office until {back:%B %d, %Y}.\r\n"))
        live.sandbox.deliver("ada@example.com", (
            f"From: r3@example.org\r\nTo: ada@example.com\r\nSubject: Abwesenheitsnotiz\r\n"
            f"In-Reply-To: {first['r3@example.org']}\r\nAuto-Submitted: auto-replied\r\n"
            f"\r\nIch bin bis zum {(utcnow() + dt.timedelta(days=90)):%d.%m.%Y} im Urlaub.\r\n"))
        worker.sync.sync_account(1, force=True)
    finally:
        worker.stop()
    steps = {m["to"]: m for m in api.get(f"{live.url}/api/v1/messages?status=scheduled")
             .json()["items"]}
    assert steps["r1@example.org"]["release_at"].startswith(back.isoformat())
    postponed = [e for e in steps["r1@example.org"]["events"] if "postponed" in
                 (e["detail"] or {})]
    assert "r1@example.org is away until" in postponed[0]["detail"]["postponed"]
    # "ignore": at its time; 90 days away: at most 30 days on.
    assert not any("postponed" in (e["detail"] or {}) for e in steps["r2@example.org"]["events"])
    r3 = dt.datetime.fromisoformat(steps["r3@example.org"]["release_at"])
    assert dt.timedelta(days=29) < r3 - utcnow() <= dt.timedelta(days=30)


def test_a_thread_gmail_no_longer_has_does_not_stop_the_follow_up(live_no_worker):
    from scheduler.worker import ReleaseWorker
    live = live_no_worker
    api = live.user()
    campaign(live, api, ["r1@example.org"])
    worker = ReleaseWorker(live.wiring)
    try:
        worker.run_once(wait=True)
        # Its owner deleted the thread: Gmail answers 404 (not retried).
        live.sandbox.fault(method="threads.get", status=404, reason="notFound",
                           message="Requested entity was not found.", times=1)
        follow_ups_due(live)
        worker.run_once(wait=True)
    finally:
        worker.stop()
    assert sorted(m["subject"] for m in live.sandbox.sent()) == ["Following up", "News"]
