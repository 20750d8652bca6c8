"""Gmail push notifications through Pub/Sub (the sandbox plays Gmail's watch and a pull
subscription): with polling an hour away, a reply is recorded within seconds; duplicate
notifications are harmless; a topic Gmail may not publish to is shown with its fix."""
from __future__ import annotations

import base64
import json

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from scheduler.store.models import GmailAccount
from tests.helpers import service_account, wait_for
from tests.integration.test_last_check import campaign, follow_ups_due

TOPIC = "projects/mr-test/topics/gmail"
SUBSCRIPTION = "projects/mr-test/subscriptions/replies"
PULLER = "puller@mr-test.iam.gserviceaccount.com"


@pytest.fixture
def pushing(serve, sandbox, tmp_path):
    """A deployment whose mailboxes are watched, with a worker pulling the subscription."""
    key_file = service_account(sandbox.url, tmp_path, PULLER, "mr-test", SUBSCRIPTION,
                               TOPIC, ack_deadline=5)

    def start(**env):
        return serve(MAILRELEASE_PUBSUB_TOPIC=TOPIC, MAILRELEASE_PUBSUB_SUBSCRIPTION=SUBSCRIPTION,
                     MAILRELEASE_PUBSUB_API_ENDPOINT=sandbox.url,
                     GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
                     MAILRELEASE_SYNC_SECONDS="3600", **env)
    return start


def _pubsub(live) -> dict:
    return requests.get(f"{live.sandbox.url}/sandbox/api/pubsub", timeout=10).json()


def _reply(live, original: str) -> None:
    live.sandbox.deliver("ada@example.com", (
        f"From: Reader <reader@example.org>\r\nTo: ada@example.com\r\nSubject: Re: News\r\n"
        f"In-Reply-To: {original}\r\nReferences: {original}\r\n\r\nThanks!\r\n"))


def test_a_reply_is_recorded_within_seconds_with_polling_an_hour_away(pushing):
    live = pushing()
    api = live.user()  # signing in watches the mailbox
    watch = _pubsub(live)["watches"]["ada@example.com"]
    assert watch["topic"] == TOPIC and watch["labels"] == ["INBOX"]
    made = api.post(f"{live.url}/api/v1/messages", json={
        "to": "reader@example.org", "subject": "News", "html": "<p>Hi</p>"}).json()
    sent = wait_for(lambda: (m := api.get(f"{live.url}/api/v1/messages/{made['id']}")
                             .json())["status"] == "sent" and m)
    assert _pubsub(live)["published"] == 0  # our own send is not a notification
    # Gmail publishes the reply's notification twice (Pub/Sub delivers at least once).
    requests.post(f"{live.sandbox.url}/sandbox/api/pubsub/faults", json={"duplicate": 1},
                  timeout=10)
    _reply(live, sent["message_id_header"])
    replied = wait_for(lambda: [e for e in api.get(f"{live.url}/api/v1/messages/"
                                                   f"{made['id']}").json()["events"]
                                if e["type"] == "replied"], 10)
    assert len(replied) == 1
    # Everything pulled was acknowledged: nothing comes back.
    wait_for(lambda: _pubsub(live)["subscriptions"][SUBSCRIPTION] == {
        "topic": TOPIC, "waiting": 0, "out": 0}, 10)
    with live.db.read() as s:
        account = s.get(GmailAccount, 1)
        assert account.watch_expires_at is not None and account.watch_error is None


def test_a_reply_cancels_the_follow_ups_still_to_come_at_once(pushing):
    live = pushing()
    api = live.user()
    campaign(live, api, ["reader@example.org"], follow_ups=[
        {"after_seconds": 86400, "subject": "Following up"},
        {"after_seconds": 86400, "subject": "Last call", "unless": "click"}])
    first = wait_for(lambda: live.sandbox.sent() and live.sandbox.sent()[0])
    _reply(live, first["messageId"])
    ended = wait_for(lambda: len(rows := api.get(f"{live.url}/api/v1/messages?status="
                                                 f"cancelled").json()["items"]) == 2 and rows,
                     10)
    assert all("reader@example.org replied to a previous step" in m["error"] for m in ended)
    assert live.sandbox.count() == 1  # only the first step went


def test_a_dropped_notification_is_caught_by_the_last_check(pushing):
    live = pushing()
    api = live.user()
    campaign(live, api, ["reader@example.org"], follow_ups=[
        {"after_seconds": 86400, "subject": "Following up"}])
    first = wait_for(lambda: live.sandbox.sent() and live.sandbox.sent()[0])
    requests.post(f"{live.sandbox.url}/sandbox/api/pubsub/faults", json={"drop": 1},
                  timeout=10)
    _reply(live, first["messageId"])
    follow_ups_due(live)  # the next day: nothing told the worker of the reply
    live.worker.wake()
    ended = wait_for(lambda: api.get(f"{live.url}/api/v1/messages?status=cancelled")
                     .json()["items"], 10)
    assert "found by the last look at the thread" in ended[0]["error"]
    assert live.sandbox.count() == 1


def test_a_topic_gmail_may_not_publish_to_is_shown_with_the_fix(pushing):
    live = pushing()
    requests.post(f"{live.sandbox.url}/sandbox/api/pubsub/deny", json={"topic": TOPIC},
                  timeout=10)
    browser = live.browser()
    with live.db.read() as s:
        problem = s.get(GmailAccount, 1).watch_error
    assert "gmail-api-push@system.gserviceaccount.com" in problem
    assert "Pub/Sub Publisher" in browser.get(f"{live.url}/accounts").text
    # Tried again with backoff: not at once, and after 20 minutes for the second failure.
    import datetime as dt

    from scheduler.delivery.notifications import PushNotifications
    from scheduler.store.db import utcnow
    later = {"at": utcnow()}
    push = PushNotifications(live.db, live.settings, live.wiring.gmail, live.worker.sync,
                             clock=lambda: later["at"])
    assert push.watch_due() == 0
    with live.db.read() as s:
        assert s.get(GmailAccount, 1).watch_failures == 1
    later["at"] += dt.timedelta(minutes=15)
    push.watch_due()
    with live.db.read() as s:
        assert s.get(GmailAccount, 1).watch_failures == 1  # 20 minutes not yet up
    later["at"] += dt.timedelta(minutes=10)
    push.watch_due()
    with live.db.read() as s:
        assert s.get(GmailAccount, 1).watch_failures == 2
    # Sending goes on.
    api = live.user()
    made = api.post(f"{live.url}/api/v1/messages", json={
        "to": "reader@example.org", "subject": "News", "html": "<p>Hi</p>"}).json()
    wait_for(lambda: api.get(f"{live.url}/api/v1/messages/{made['id']}").json()["status"]
             == "sent")


PUSHER = "gmail-push@mr-test.iam.gserviceaccount.com"


def test_pushed_notifications_are_verified_stored_and_read_within_seconds(serve, sandbox):
    live = serve(MAILRELEASE_PUBSUB_TOPIC=TOPIC,
                 MAILRELEASE_PUBSUB_PUSH_AUDIENCE="https://mail.example.com/hooks/gmail-push",
                 MAILRELEASE_PUBSUB_PUSH_SERVICE_ACCOUNT=PUSHER,
                 MAILRELEASE_GOOGLE_CERTS_URL=f"{sandbox.url}/oauth2/v1/certs")
    hook = f"{live.url}/hooks/gmail-push"
    requests.post(f"{sandbox.url}/sandbox/api/pubsub/subscriptions", json={
        "name": "projects/mr-test/subscriptions/push", "topic": TOPIC,
        "push": {"endpoint": hook, "audience": "https://mail.example.com/hooks/gmail-push",
                 "service_account": PUSHER}}, timeout=10)
    api = live.user()
    made = api.post(f"{live.url}/api/v1/messages", json={
        "to": "reader@example.org", "subject": "News", "html": "<p>Hi</p>"}).json()
    sent = wait_for(lambda: (m := api.get(f"{live.url}/api/v1/messages/{made['id']}")
                             .json())["status"] == "sent" and m)
    _reply(live, sent["message_id_header"])
    wait_for(lambda: "replied" in [e["type"] for e in api.get(
        f"{live.url}/api/v1/messages/{made['id']}").json()["events"]], 10)
    # Forged or misdirected pushes are refused and store nothing.
    from sandbox.signing import oidc_token
    data = {"message": {"data": base64.b64encode(json.dumps(
        {"emailAddress": "ada@example.com", "historyId": 1}).encode()).decode()}}
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = oidc_token("https://mail.example.com/hooks/gmail-push", PUSHER)
    head, body, _ = good.split(".")
    forged_sig = other.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    forged = f"{head}.{body}.{base64.urlsafe_b64encode(forged_sig).rstrip(b'=').decode()}"
    for token in (None, "nonsense", forged,
                  oidc_token("https://elsewhere.example/hook", PUSHER),
                  oidc_token("https://mail.example.com/hooks/gmail-push",
                             "someone@evil.example"),
                  oidc_token("https://mail.example.com/hooks/gmail-push", PUSHER,
                             lifetime=-600)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        refused = requests.post(hook, json=data, headers=headers, timeout=10)
        assert refused.status_code == 401, (token, refused.text)
    with live.db.read() as s:
        from scheduler.store.models import MailboxNotification
        assert s.query(MailboxNotification).count() == 0
    # Not a Gmail notification: acknowledged (Pub/Sub would retry a refusal), not kept.
    for junk in ({"message": {"data": "!!"}}, {"message": "x"}, ["x"]):
        assert requests.post(hook, json=junk, headers={"Authorization": f"Bearer {good}"},
                             timeout=10).status_code == 204
    with live.db.read() as s:
        assert s.query(MailboxNotification).count() == 0
    assert requests.post(hook, json=data, headers={"Authorization": f"Bearer {good}"},
                         timeout=10).status_code == 204
