"""The release engine under Gmail's faults and limits: nothing sent twice, nothing lost."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from gmail_client.oauth import SCOPE_COMPOSE, SCOPE_READONLY
from scheduler.store import queue
from scheduler.store.db import utcnow
from scheduler.store.models import GmailAccount, Message
from scheduler.worker import ReleaseWorker
from tests.helpers import wait_for

SIMPLE = {"to": "x@example.org", "subject": "S {{ n }}", "html": "<p>{{ n }}</p>"}


def _create(live, api, n=0, **extra) -> str:
    resp = api.post(live.url + "/api/v1/messages", json={**SIMPLE, "data": {"n": n}, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _get(live, api, mid) -> dict:
    return api.get(f"{live.url}/api/v1/messages/{mid}").json()


def _until_status(live, api, mid, status, timeout=10) -> dict:
    return wait_for(lambda: (b := _get(live, api, mid))["status"] == status and b, timeout)


def _ids_sent(live) -> list[str]:
    return [m["messageId"] for m in live.sandbox.sent()]


def test_transient_503_waits_in_retry_wait_then_sends_once(live, api):
    live.sandbox.fault(method="send", status=503, times=2)
    mid = _create(live, api)
    body = _until_status(live, api, mid, "sent")
    types = [e["type"] for e in body["events"]]
    assert types.count("retry_wait") == 2 and types[-1] == "sent"
    retry = next(e for e in body["events"] if e["type"] == "retry_wait")
    assert "503" in retry["detail"]["error"] and retry["detail"]["retry_at"]
    assert len(live.sandbox.sent()) == 1


def test_429_retry_after_is_honoured(live, api):
    live.sandbox.fault(method="send", status=429, reason="rateLimitExceeded",
                       message="Too many concurrent requests for user", retry_after="2")
    mid = _create(live, api)
    waiting = _until_status(live, api, mid, "retry_wait", 5)
    failed_at = dt.datetime.fromisoformat(waiting["events"][-1]["at"])
    assert (dt.datetime.fromisoformat(waiting["release_at"]) - failed_at).total_seconds() >= 2
    body = _until_status(live, api, mid, "sent", 10)
    assert (dt.datetime.fromisoformat(body["sent_at"]) - failed_at).total_seconds() >= 2
    assert len(live.sandbox.sent()) == 1


def test_ambiguous_500_after_gmail_accepted_is_reconciled_not_resent(live, api):
    live.sandbox.fault(method="send", status=500, after_store=True)
    mid = _create(live, api)
    body = _until_status(live, api, mid, "sent")
    assert len(live.sandbox.sent()) == 1
    assert body["events"][-1]["detail"].get("reconciled") is True
    assert body["gmail_message_id"] == live.sandbox.sent()[0]["id"]


def test_timeout_after_gmail_accepted_is_reconciled_not_resent(serve):
    live = serve(MAILRELEASE_GMAIL_TIMEOUT_SECONDS="0.5")
    api = live.user()
    live.sandbox.fault(method="send", status=200, after_store=True, delay=1.5)
    mid = _create(live, api)
    body = _until_status(live, api, mid, "sent", 15)
    assert len(live.sandbox.sent()) == 1
    assert body["events"][-1]["detail"].get("reconciled") is True


def test_connection_reset_after_gmail_accepted_is_reconciled(live, api):
    live.sandbox.fault(method="send", after_store=True, reset=True)
    mid = _create(live, api)
    _until_status(live, api, mid, "sent")
    assert len(live.sandbox.sent()) == 1


def test_timeout_before_gmail_accepted_is_sent_after_checking(serve):
    live = serve(MAILRELEASE_GMAIL_TIMEOUT_SECONDS="0.5")
    api = live.user()
    live.sandbox.fault(method="send", status=503, delay=1.5)
    mid = _create(live, api)
    body = _until_status(live, api, mid, "sent", 15)
    assert len(live.sandbox.sent()) == 1
    assert not body["events"][-1]["detail"].get("reconciled")


def test_ambiguous_send_without_read_scope_is_held_as_delivery_unknown(live):
    live.sign_in(drop_scopes=(SCOPE_READONLY, SCOPE_COMPOSE))
    api = live.api(live.token())
    live.sandbox.fault(method="send", status=502, after_store=True)
    mid = _create(live, api)
    body = _until_status(live, api, mid, "held")
    assert body["hold_kind"] == "delivery_unknown" and "delivery unknown" in body["error"]
    assert len(live.sandbox.sent()) == 1
    # The user decides to send it anyway: it goes, with no reconciliation.
    api.post(f"{live.url}/api/v1/messages/{mid}/send-now")
    _until_status(live, api, mid, "sent")
    assert len(live.sandbox.sent()) == 2


def test_gmail_daily_limit_holds_until_its_reset_then_releases(live, api):
    reset_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).replace(microsecond=0)
    live.sandbox.fault(method="send", status=429, reason="rateLimitExceeded",
                       message=f"User-rate limit exceeded.  Retry after "
                               f"{reset_at.strftime('%Y-%m-%dT%H:%M:%S.000Z')} (Mail sending)")
    first = _create(live, api, 1)
    held = _until_status(live, api, first, "held")
    assert held["hold_kind"] == "daily_limit"
    assert dt.datetime.fromisoformat(held["hold_until"]) == reset_at
    second = _create(live, api, 2)
    assert _until_status(live, api, second, "held")["hold_kind"] == "daily_limit"
    assert live.sandbox.sent() == []  # the second never reached Gmail
    for mid in (first, second):
        body = _until_status(live, api, mid, "sent", 10)
        assert dt.datetime.fromisoformat(body["sent_at"]) >= reset_at
    assert len(live.sandbox.sent()) == 2


def test_configured_daily_cap_holds_the_rest_over_a_rolling_day(serve):
    live = serve(MAILRELEASE_DAILY_CAP="2")
    api = live.user()
    ids = [_create(live, api, n) for n in range(3)]
    wait_for(lambda: sorted(_get(live, api, m)["status"] for m in ids)
             == ["held", "sent", "sent"], 10)
    held = next(_get(live, api, m) for m in ids if _get(live, api, m)["status"] == "held")
    assert held["hold_kind"] == "daily_limit" and "2 of 2" in held["error"]
    first_sent = min(dt.datetime.fromisoformat(_get(live, api, m)["sent_at"])
                     for m in ids if _get(live, api, m)["sent_at"])
    assert dt.datetime.fromisoformat(held["hold_until"]) == first_sent + dt.timedelta(hours=24)
    assert len(live.sandbox.sent()) == 2


def test_default_daily_caps_are_500_for_gmail_and_2000_for_workspace():
    from scheduler.audience.accounts import default_daily_cap
    assert default_daily_cap("a@gmail.com") == 500
    assert default_daily_cap("a@googlemail.com") == 500
    assert default_daily_cap("a@company.example") == 2000


def test_revoked_grant_holds_everything_until_the_user_signs_in_again(live, api):
    live.sandbox.revoke("ada@example.com")
    ids = [_create(live, api, n) for n in range(3)]
    for mid in ids:
        assert _until_status(live, api, mid, "held")["hold_kind"] == "reconnect"
    with live.db.read() as s:
        assert s.scalar(select(GmailAccount.status)) == "reconnect"
    page = live.sign_in()
    assert "Connected" in page.text
    for mid in ids:
        _until_status(live, api, mid, "sent")
    assert len(live.sandbox.sent()) == 3


def test_a_grant_revoked_while_its_owner_reconnects_is_not_held_for_reconnection(
        live_no_worker):
    """The worker still holds the old grant (read before the owner signed in again): its
    invalid_grant must not mark the freshly reconnected account, and the message goes out
    with the new grant."""
    live = live_no_worker
    api = live.user()
    mid = _create(live, api)
    worker = ReleaseWorker(live.wiring)
    worker._accounts.put(1, worker.releaser.load_account(1))  # the grant as read before
    live.sandbox.revoke("ada@example.com")
    assert "Connected" in live.sign_in().text
    worker.run_once(wait=True)
    with live.db.read() as s:
        assert s.scalar(select(GmailAccount.status)) == "connected"
    assert _get(live, api, mid)["status"] == "retry_wait"
    worker.run_once(wait=True)
    body = _get(live, api, mid)
    assert body["status"] == "sent", body
    assert len(live.sandbox.sent()) == 1
    worker.stop()


def test_401_even_after_refresh_marks_the_account_for_reconnection(live, api):
    live.sandbox.fault(method="send", status=401, reason="authError",
                       message="Invalid Credentials", times=4)
    mid = _create(live, api)
    body = _until_status(live, api, mid, "held")
    assert body["hold_kind"] == "reconnect"
    assert live.sandbox.sent() == []


def test_permanent_error_fails_with_gmails_reason_and_the_queue_goes_on(live, api):
    live.sandbox.fault(method="send", status=400, reason="invalidArgument",
                       message="Invalid To header")
    bad = _create(live, api, 1)
    body = _until_status(live, api, bad, "failed")
    assert "Invalid To header" in body["error"] and "400" in body["error"]
    good = _create(live, api, 2)
    _until_status(live, api, good, "sent")
    assert len(live.sandbox.sent()) == 1


def test_message_far_overdue_after_downtime_is_held_for_a_decision(serve):
    live = serve(with_worker=False, MAILRELEASE_MAX_LATENESS_SECONDS="3600")
    api = live.user()
    late, recent = _create(live, api, 1), _create(live, api, 2)
    with live.db.write() as s:
        s.execute(update(Message).where(Message.id == late)
                  .values(release_at=utcnow() - dt.timedelta(hours=2)))
        s.execute(update(Message).where(Message.id == recent)
                  .values(release_at=utcnow() - dt.timedelta(minutes=30)))
    worker = ReleaseWorker(live.wiring)
    worker.run_once(wait=True)
    worker.stop()
    assert _get(live, api, late)["hold_kind"] == "too_late"
    assert _get(live, api, recent)["status"] == "sent"


def test_each_account_is_paced_to_its_rate(serve):
    live = serve(MAILRELEASE_SENDS_PER_SECOND="5")
    api = live.user()
    ids = [_create(live, api, n, send_at=(utcnow() + dt.timedelta(seconds=1)).isoformat())
           for n in range(8)]
    for mid in ids:
        _until_status(live, api, mid, "sent", 15)
    times = sorted(int(m["internalDate"]) for m in live.sandbox.sent())
    # 5/s is one send every 0.2 s: 8 sends span at least 1.4 s (unpaced they take ~0.05 s).
    # Arrival times jitter with the machine's load, so the span is checked, not each gap.
    span = (times[-1] - times[0]) / 1000
    assert span >= 1.3, times


def test_stopping_worker_gives_back_claims_it_has_not_started(serve):
    live = serve(with_worker=False, MAILRELEASE_SENDS_PER_SECOND="1")
    api = live.user()
    ids = [_create(live, api, n) for n in range(5)]
    worker = ReleaseWorker(live.wiring)
    worker.start()
    wait_for(lambda: len(live.sandbox.sent()) >= 1, 10)
    worker.stop()
    statuses = [_get(live, api, m)["status"] for m in ids]
    assert "sending" not in statuses
    assert statuses.count("sent") == len(live.sandbox.sent())
    assert set(statuses) <= {"sent", "scheduled"}
    again = ReleaseWorker(live.wiring)
    again.start()
    for mid in ids:
        _until_status(live, api, mid, "sent", 15)
    again.stop()
    assert sorted(_ids_sent(live)) == sorted(set(_ids_sent(live))) and len(_ids_sent(live)) == 5


def test_cancel_after_a_claim_is_refused_so_nothing_is_both(live_no_worker):
    live = live_no_worker
    api = live.user()
    mid = _create(live, api)
    with live.db.write() as s:
        (claim,) = queue.claim_due(s, utcnow(), 60, 10)
    resp = api.post(f"{live.url}/api/v1/messages/{mid}/cancel")
    assert resp.status_code == 409
    resp = api.patch(f"{live.url}/api/v1/messages/{mid}", json={"subject": "late edit"})
    assert resp.status_code == 409
    with live.db.write() as s:
        assert queue.mark_sent(s, claim, utcnow(), "g1", "t1", "S 0")
    assert _get(live, api, mid)["status"] == "sent"


def test_a_claim_whose_lease_was_taken_over_cannot_finish(live_no_worker):
    live = live_no_worker
    api = live.user()
    _create(live, api)
    with live.db.write() as s:
        (old,) = queue.claim_due(s, utcnow(), -1, 10)
    with live.db.write() as s:
        (new,) = queue.claim_due(s, utcnow(), 60, 10)
    # The first worker never reached Gmail: the message is simply sent, not reconciled.
    assert not new.needs_reconcile and new.token != old.token
    with live.db.write() as s:
        assert not queue.mark_failed(s, old, utcnow(), "stale worker")
        assert queue.mark_sent(s, new, utcnow(), "g", "t", "S")


def test_a_claim_lost_after_the_gmail_request_began_is_reconciled(live_no_worker):
    live = live_no_worker
    api = live.user()
    _create(live, api)
    with live.db.write() as s:
        (old,) = queue.claim_due(s, utcnow(), 60, 10)
        assert queue.clear_to_send(s, old, utcnow() - dt.timedelta(seconds=1), in_flight=True)
    with live.db.write() as s:
        (new,) = queue.claim_due(s, utcnow(), 60, 10)
    assert new.needs_reconcile


def test_worker_wakes_for_a_held_message_when_its_hold_ends(live, api):
    mid = _create(live, api, send_at=(utcnow() + dt.timedelta(hours=1)).isoformat())
    until = utcnow() + dt.timedelta(seconds=1.5)
    with live.db.write() as s:
        s.execute(update(Message).values(status="held", hold_kind="daily_limit",
                                         hold_until=until))
    live.worker.wake()
    body = _until_status(live, api, mid, "sent", 6)
    lateness = (dt.datetime.fromisoformat(body["sent_at"]) - until).total_seconds()
    assert 0 <= lateness < 1.0


def test_a_busy_paced_account_does_not_delay_another_accounts_message(serve):
    live = serve(MAILRELEASE_SENDS_PER_SECOND="1")
    ada = live.user("ada@example.com")
    bob = live.user("bob@example.com")
    ada_ids = [_create(live, ada, n) for n in range(6)]  # ~6 s of sending at 1/s
    due = utcnow() + dt.timedelta(seconds=1.5)
    bob_id = _create(live, bob, 99, send_at=due.isoformat())
    body = _until_status(live, bob, bob_id, "sent", 10)
    assert (dt.datetime.fromisoformat(body["sent_at"]) - due).total_seconds() < 1.0
    assert _get(live, ada, ada_ids[-1])["status"] != "sent"  # ada's queue is still going
    for mid in ada_ids:
        _until_status(live, ada, mid, "sent", 15)


def test_a_timed_hold_is_not_mistaken_for_downtime_when_it_ends(serve):
    """A daily-limit hold can last hours; when it ends the message goes, it is not 'late'."""
    live = serve(MAILRELEASE_MAX_LATENESS_SECONDS="1")
    api = live.user()
    reset_at = (utcnow() + dt.timedelta(seconds=2.5)).replace(microsecond=0)
    live.sandbox.fault(method="send", status=403, reason="dailyLimitExceeded",
                       message=f"Daily Limit Exceeded. Retry after "
                               f"{reset_at.strftime('%Y-%m-%dT%H:%M:%SZ')} (Mail sending)")
    mid = _create(live, api)
    assert _until_status(live, api, mid, "held")["hold_kind"] == "daily_limit"
    body = _until_status(live, api, mid, "sent", 30)  # a busy machine may take a while
    assert dt.datetime.fromisoformat(body["sent_at"]) >= reset_at


def test_a_sender_thread_goes_on_with_its_accounts_backlog_and_records_every_send(serve):
    live = serve(with_worker=False, MAILRELEASE_SENDS_PER_SECOND="0")
    api = live.user()
    ids = [_create(live, api, n) for n in range(8)]
    worker = ReleaseWorker(live.wiring, batch_size=3)
    # One pass claims a batch of 3; its thread claims the next batches itself (3, then 2).
    assert worker.run_once(wait=True) == 3
    bodies = [_get(live, api, mid) for mid in ids]
    assert [b["status"] for b in bodies] == ["sent"] * 8  # the last send's record is written
    assert [b["sent_at"] for b in bodies] == sorted(b["sent_at"] for b in bodies)  # in order
    sent = _ids_sent(live)
    assert sorted(sent) == sorted(b["message_id_header"] for b in bodies)  # each once
    for body in bodies:
        assert [e["type"] for e in body["events"]].count("sent") == 1, body["events"]
        assert body["gmail_message_id"]
