"""Push notifications with three real worker processes on PostgreSQL pulling one
subscription: every reply is recorded once, by whichever worker got its notification,
and every notification is acknowledged (one reader per mailbox at a time)."""
from __future__ import annotations

import collections

import requests
from sqlalchemy import select

from scheduler.store.models import Message, MessageEvent
from tests.helpers import service_account, start_worker, wait_for, worker_env

TOPIC = "projects/mr-pg/topics/gmail"
SUBSCRIPTION = "projects/mr-pg/subscriptions/replies"
PULLER = "puller@mr-pg.iam.gserviceaccount.com"


def _pubsub_env(sandbox, tmp_path) -> dict:
    key_file = service_account(sandbox.url, tmp_path, PULLER, "mr-pg", SUBSCRIPTION, TOPIC,
                               ack_deadline=5)
    return {"MAILRELEASE_PUBSUB_TOPIC": TOPIC, "MAILRELEASE_PUBSUB_SUBSCRIPTION": SUBSCRIPTION,
            "MAILRELEASE_PUBSUB_API_ENDPOINT": sandbox.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}


def test_three_workers_pull_one_subscription_and_record_each_reply_once(serve, sandbox,
                                                                        pg_url, tmp_path):
    env = _pubsub_env(sandbox, tmp_path)
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url, **env)
    api = live.user()  # watched at sign-in
    for n in range(30):
        api.post(f"{live.url}/api/v1/messages", json={
            "to": f"r{n}@example.org", "subject": "News", "html": "<p>Hi</p>"})
    procs = [start_worker(worker_env(live, MAILRELEASE_SENDS_PER_SECOND="0",
                                     MAILRELEASE_POLL_SECONDS="0.5", **env),
                          tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        wait_for(lambda: live.sandbox.count() == 30, 60, 0.5)
        for m in live.sandbox.sent():
            live.sandbox.deliver("ada@example.com", (
                f"From: {m['to']}\r\nTo: ada@example.com\r\nSubject: Re: News\r\n"
                f"In-Reply-To: {m['messageId']}\r\n\r\nThanks\r\n"))

        def replied():
            with live.db.read() as s:
                return collections.Counter(s.scalars(
                    select(MessageEvent.message_id).where(MessageEvent.type == "replied")))
        counts = wait_for(lambda: (c := replied()) and len(c) == 30 and c, 30, 0.5)
        assert set(counts.values()) == {1}
        wait_for(lambda: requests.get(f"{sandbox.url}/sandbox/api/pubsub", timeout=10)
                 .json()["subscriptions"][SUBSCRIPTION]["out"] == 0, 30, 0.5)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            assert proc.wait(timeout=60) == 0
    with live.db.read() as s:
        assert s.scalar(select(Message.id).where(Message.status != "sent")) is None
