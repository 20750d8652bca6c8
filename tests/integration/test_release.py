"""The release worker against the sandbox Gmail: on time, once, with the right headers."""
from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import time

from sqlalchemy import select, update

from scheduler.store import queue
from scheduler.store.db import utcnow
from scheduler.store.models import GmailAccount, Message
from tests.helpers import wait_for


def _raw(entry) -> email.message.EmailMessage:
    data = base64.urlsafe_b64decode(entry["raw"] + "=" * (-len(entry["raw"]) % 4))
    return email.message_from_bytes(data, policy=email.policy.default)


def _status(api, live, mid):
    return api.get(f"{live.url}/api/v1/messages/{mid}").json()


def test_scheduled_message_leaves_on_time_once_with_right_headers(live):
    api = live.user("ada@example.com")
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    resp = api.post(live.url + "/api/v1/messages", json={
        "to": "Grace Hopper <grace@example.org>",
        "subject": "Your order {{ order }}",
        "html": "<p>Hello {{ name }}, order <b>{{ order }}</b> shipped.</p>",
        "data": {"name": "Grace", "order": "#42"},
        "send_at": due.isoformat()})
    assert resp.status_code == 201
    mid = resp.json()["id"]
    body = wait_for(lambda: (b := _status(api, live, mid))["status"] == "sent" and b, 10)
    left_at = dt.datetime.fromisoformat(body["sent_at"])
    assert 0 <= (left_at - due).total_seconds() < 1.0, (left_at, due)

    (entry,) = live.sandbox.sent()
    msg = _raw(entry)
    assert msg["To"] == "Grace Hopper <grace@example.org>"
    assert msg["From"] == "ada@example.com"
    assert msg["Subject"] == "Your order #42"
    assert msg["Message-ID"] == body["message_id_header"]
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    plain = msg.get_body(("plain",)).get_content()
    assert "order #42 shipped" in plain and "**" not in plain  # plain text, not Markdown
    assert "<b>#42</b>" in msg.get_body(("html",)).get_content()

    assert body["gmail_message_id"] == entry["id"]
    assert body["thread_id"] == entry["threadId"]
    assert [e["type"] for e in body["events"]] == ["scheduled", "sending", "sent"]


def test_message_due_now_is_sent_at_once(live, api):
    started = time.monotonic()
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "Now", "html": "<p>now</p>"}).json()["id"]
    wait_for(lambda: _status(api, live, mid)["status"] == "sent", 5)
    assert time.monotonic() - started < 1.0
    assert len(live.sandbox.sent()) == 1


def test_html_is_escaped_and_values_cannot_inject_headers(live, api):
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "Hi {{ name }}",
        "html": "<p>{{ name }}</p>",
        "data": {"name": "Eve\r\nBcc: victim@example.com <script>"}}).json()["id"]
    wait_for(lambda: _status(api, live, mid)["status"] == "sent", 5)
    msg = _raw(live.sandbox.sent()[0])
    assert msg["Bcc"] is None
    assert "&lt;script&gt;" in msg.get_body(("html",)).get_content()


def test_non_ascii_subject_and_name_round_trip(live, api):
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "Zoë Müller <zoe@example.de>", "subject": "Grüße, {{ n }} — 日本",
        "html": "<p>ç</p>", "data": {"n": "Zoë"}}).json()["id"]
    wait_for(lambda: _status(api, live, mid)["status"] == "sent", 5)
    entry = live.sandbox.sent()[0]
    assert b"=?utf-8?" in base64.urlsafe_b64decode(entry["raw"] + "==").lower()
    msg = _raw(entry)
    assert msg["Subject"] == "Grüße, Zoë — 日本"
    assert msg["To"].addresses[0].display_name == "Zoë Müller"


def test_cancelled_message_is_never_sent(live, api):
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>h</p>", "delay_seconds": 1}).json()["id"]
    assert api.post(f"{live.url}/api/v1/messages/{mid}/cancel").status_code == 200
    # A witness due after it: once the witness is sent, the worker has passed the
    # cancelled one's time (observed, not slept on).
    witness = api.post(live.url + "/api/v1/messages", json={
        "to": "w@example.org", "subject": "W", "html": "<p>w</p>",
        "delay_seconds": 1.5}).json()["id"]
    wait_for(lambda: _status(api, live, witness)["status"] == "sent", 10)
    assert _status(api, live, mid)["status"] == "cancelled"
    assert [m["to"] for m in live.sandbox.sent()] == ["w@example.org"]


def test_send_now_releases_a_later_message_immediately(live, api):
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>h</p>",
        "delay_seconds": 3600}).json()["id"]
    api.post(f"{live.url}/api/v1/messages/{mid}/send-now")
    wait_for(lambda: _status(api, live, mid)["status"] == "sent", 5)


def test_reschedule_earlier_wakes_the_worker_at_the_new_time(live, api):
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>h</p>",
        "delay_seconds": 3600}).json()["id"]
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)
    api.patch(f"{live.url}/api/v1/messages/{mid}", json={"send_at": due.isoformat()})
    body = wait_for(lambda: (b := _status(api, live, mid))["status"] == "sent" and b, 6)
    assert 0 <= (dt.datetime.fromisoformat(body["sent_at"]) - due).total_seconds() < 1.0


def test_expired_access_token_is_refreshed_silently_and_stored_encrypted(live):
    live.sandbox.state.access_token_seconds = 1  # google-auth refreshes tokens this close
    api = live.user()
    with live.db.read() as s:
        before = s.scalar(select(GmailAccount.token_blob))
    grant = next(iter(live.sandbox.state.grants.values()))
    tokens_before = set(live.sandbox.state.access_tokens)
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>h</p>"}).json()["id"]
    wait_for(lambda: _status(api, live, mid)["status"] == "sent", 10)
    new_tokens = set(live.sandbox.state.access_tokens) - tokens_before
    assert new_tokens, "no refresh happened"
    with live.db.read() as s:
        after = s.scalar(select(GmailAccount.token_blob))
    assert after != before
    from scheduler.store.crypto import TokenCipher
    info = TokenCipher(live.settings.token_key).decrypt(after)
    assert info["token"] in new_tokens and info["refresh_token"] == grant.refresh_token


def test_revoked_grant_holds_the_message_and_flags_the_account(live, api):
    for grant in live.sandbox.state.grants.values():
        grant.revoked = True
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>h</p>"}).json()["id"]
    body = wait_for(lambda: (b := _status(api, live, mid))["status"] == "held" and b, 10)
    assert "reconnect" in body["error"]
    with live.db.read() as s:
        assert s.scalar(select(GmailAccount.status)) == "reconnect"
    assert live.sandbox.sent() == []


def _queued_with_idle_worker(live):
    """A due message and a worker that has not been started (the test drives it)."""
    from scheduler.worker import ReleaseWorker
    api = live.user()
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>h</p>"}).json()["id"]
    return api, mid, ReleaseWorker(live.wiring)


def test_expired_lease_is_reconciled_by_message_id_not_resent(live_no_worker):
    """A worker died after Gmail accepted the send: the next claim finds it and records it."""
    live = live_no_worker
    api, mid, worker = _queued_with_idle_worker(live)
    with live.db.write() as s:
        (claim,) = queue.claim_due(s, utcnow(), 120, 10)
        assert queue.clear_to_send(s, claim, utcnow() + dt.timedelta(seconds=60))
    # The first worker sends, then "dies" before recording the outcome.
    account = worker.releaser.load_account(claim.account_id)
    from gmail_client.mime import build_message
    raw = build_message(sender=("", "ada@example.com"), to=("", "x@example.org"),
                        subject="S", html="<p>h</p>", text="h",
                        message_id=claim.message.rfc822_id)
    worker.releaser.gmail.pooled(claim.account_id, account.token_info).send(raw)
    with live.db.write() as s:
        s.execute(update(Message).values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    assert worker.run_once(wait=True) == 1
    body = _status(api, live, mid)
    assert body["status"] == "sent"
    assert len(live.sandbox.sent()) == 1
    assert body["gmail_message_id"] == live.sandbox.sent()[0]["id"]
    assert body["events"][-1]["detail"]["reconciled"] is True
    worker.stop()


def test_expired_lease_with_nothing_in_gmail_is_sent_once(live_no_worker):
    live = live_no_worker
    api, mid, worker = _queued_with_idle_worker(live)
    with live.db.write() as s:
        (claim,) = queue.claim_due(s, utcnow(), 60, 10)
        assert not claim.needs_reconcile
        # It reached the Gmail request, then its lease ran out (the worker died).
        assert queue.clear_to_send(s, claim, utcnow() - dt.timedelta(seconds=1))
    assert worker.run_once(wait=True) == 1
    body = _status(api, live, mid)
    assert body["status"] == "sent"
    assert [e["detail"].get("reconcile") for e in body["events"] if e["type"] == "sending"] \
        == [False, True]
    assert len(live.sandbox.sent()) == 1
    worker.stop()


def test_expired_lease_before_the_gmail_request_is_sent_without_a_reconcile(live_no_worker):
    """A claim lost before the send began (a database outage): nothing may have left."""
    live = live_no_worker
    api, mid, worker = _queued_with_idle_worker(live)
    with live.db.write() as s:
        queue.claim_due(s, utcnow(), -1, 10)  # a lease that has already expired
    assert worker.run_once(wait=True) == 1
    body = _status(api, live, mid)
    assert body["status"] == "sent"
    assert [e["detail"].get("reconcile") for e in body["events"] if e["type"] == "sending"] \
        == [False, False]
    assert len(live.sandbox.sent()) == 1
    worker.stop()


def test_a_502_from_the_token_endpoint_is_retried_and_keeps_the_account_connected(live):
    live.sandbox.state.access_token_seconds = 1  # the send must refresh the token first
    api = live.user()
    live.sandbox.fault(method="token", status=502, message="Bad Gateway", times=2)
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>h</p>"}).json()["id"]
    body = wait_for(lambda: (b := _status(api, live, mid))["status"] == "sent" and b, 15)
    assert any(e["type"] == "retry_wait" and "refresh" in e["detail"]["error"]
               for e in body["events"])
    with live.db.read() as s:
        assert s.scalar(select(GmailAccount.status)) == "connected"
    assert len(live.sandbox.sent()) == 1


def test_invalid_grant_from_the_token_endpoint_still_asks_for_reconnection(live):
    live.sandbox.state.access_token_seconds = 1
    api = live.user()
    live.sandbox.fault(method="token", status=400, reason="invalid_grant",
                       message="Token has been expired or revoked.", times=-1)
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>h</p>"}).json()["id"]
    body = wait_for(lambda: (b := _status(api, live, mid))["status"] == "held" and b, 10)
    assert body["hold_kind"] == "reconnect"
    live.sandbox.state.faults.clear()
