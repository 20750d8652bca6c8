"""Replies in seconds: from a reply arriving in Gmail to `replied` recorded and to the
follow-up it stops cancelled, with Gmail push notifications (Pub/Sub pull) and with
polling.

    .venv/bin/python bench/reply_bench.py              # the figures in README
    .venv/bin/python bench/reply_bench.py --replies 20 --polling-seconds 20

The sandbox Google runs in its own process on loopback and plays Gmail's watch and a
Pub/Sub pull subscription. 50 contacts get a campaign with a follow-up a day later; once
the first steps are sent, 50 replies arrive in their threads, a few a second. Reported:
reply → replied and reply → follow-up cancelled, p50 / p99 / max; then every follow-up
falls due at once, and the number of them sent after a reply (goal: 0).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select, update

from bench.release_bench import Sandbox, deployment, percentile
from scheduler.audience import contacts
from scheduler.automation import campaigns
from scheduler.commands import NewCampaign, NewContact, NewTemplate
from scheduler.content import templates
from scheduler.store.db import utcnow
from scheduler.store.models import Message, MessageEvent
from scheduler.typed import make
from scheduler.wiring import Wiring
from scheduler.worker import ReleaseWorker
from tests.helpers import service_account

TOPIC = "projects/bench/topics/gmail"
SUBSCRIPTION = "projects/bench/subscriptions/replies"
PULLER = "puller@bench.iam.gserviceaccount.com"


def campaign(db, people: int) -> None:
    now = utcnow()
    with db.write() as s:
        contacts.add_contacts(s, 1, [make(NewContact, email=f"p{n}@example.org")
                                     for n in range(people)], now)
        template = templates.create_template(
            s, team_id=1, user_id=1, command=make(NewTemplate, name="news", subject="News",
                                                  html="<p>Hi</p>"),
            allowed_hosts=(), now=now)
        tid = template.id
    with db.read() as s:
        prepared = campaigns.prepare_campaign(s, 1, 1, make(
            NewCampaign, template_id=tid, follow_ups=[{"after_seconds": 86400,
                                                      "subject": "Following up"}]), now)
    with db.write() as s:
        campaigns.store_campaign(s, prepared)


def run(mode: str, replies: int, polling_seconds: float) -> None:
    sandbox = Sandbox()
    worker = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            env = {"MAILRELEASE_SENDS_PER_SECOND": "0"}
            if mode == "push":
                env.update(MAILRELEASE_PUBSUB_TOPIC=TOPIC,
                           MAILRELEASE_PUBSUB_SUBSCRIPTION=SUBSCRIPTION,
                           MAILRELEASE_PUBSUB_API_ENDPOINT=sandbox.url,
                           GOOGLE_APPLICATION_CREDENTIALS=str(service_account(
                               sandbox.url, folder, PULLER, "bench", SUBSCRIPTION, TOPIC)))
            else:
                env["MAILRELEASE_SYNC_SECONDS"] = str(polling_seconds)
            settings, _, db = deployment(sandbox, folder, 1, **env)
            campaign(db, replies)
            worker = ReleaseWorker(Wiring.build(settings, db))
            worker.start()
            while len(sent := requests.get(f"{sandbox.url}/sandbox/api/messages",
                                           timeout=10).json()["messages"]) < replies:
                time.sleep(0.2)
            if mode == "push":  # the watch: made by the worker's first watch round
                while not requests.get(f"{sandbox.url}/sandbox/api/pubsub",
                                       timeout=10).json()["watches"]:
                    time.sleep(0.2)
            # Watched from the side every 20 ms: when each reply's outcome is first seen
            # in the database (a timeline entry's own time is when its round began).
            replied: dict[str, float] = {}
            cancelled: dict[str, float] = {}
            done = threading.Event()

            def observe():
                while not done.is_set():
                    with db.read() as s:
                        for (rfc822,) in s.execute(
                                select(Message.rfc822_id)
                                .join(MessageEvent, MessageEvent.message_id == Message.id)
                                .where(MessageEvent.type == "replied")):
                            replied.setdefault(rfc822, time.time())
                        for (follows,) in s.execute(select(Message.follows_id).where(
                                Message.follows_id.is_not(None),
                                Message.status == "cancelled")):
                            cancelled.setdefault(follows, time.time())
                    done.wait(0.02)
            observer = threading.Thread(target=observe, daemon=True)
            observer.start()
            at = {}
            for m in sent:
                original = m["messageId"]
                at[original] = time.time()  # the reply reaches Gmail during this request
                requests.post(f"{sandbox.url}/sandbox/api/deliver", timeout=10, json={
                    "owner": "sender0@example.com", "raw":
                        f"From: {m['to']}\r\nTo: sender0@example.com\r\nSubject: Re: News"
                        f"\r\nIn-Reply-To: {original}\r\nReferences: {original}\r\n\r\n"
                        f"Thanks\r\n"})
                time.sleep(0.2)
            deadline = time.time() + polling_seconds * 2 + 90
            while (len(replied) < replies or len(cancelled) < replies) \
                    and time.time() < deadline:
                time.sleep(0.2)
            done.set()
            observer.join()
            with db.read() as s:
                by_id = dict(s.execute(select(Message.id, Message.rfc822_id)).all())
            to_replied = [replied[k] - at[k] for k in at if k in replied]
            to_cancel = [when - at[by_id[mid]] for mid, when in cancelled.items()
                         if by_id.get(mid) in at]
            with db.write() as s:  # the day passes: every follow-up falls due
                s.execute(update(Message).where(Message.follows_id.is_not(None))
                          .values(release_at=utcnow()))
            worker.wake()
            time.sleep(3)
            after = sum(m["subject"] == "Following up" for m in requests.get(
                f"{sandbox.url}/sandbox/api/messages", timeout=10).json()["messages"])
            for name, values in (("replied", to_replied), ("follow_up_cancelled", to_cancel)):
                print(f"replies mode={mode}"
                      f"{'' if mode == 'push' else f'({polling_seconds:g}s)'} {name} "
                      f"n={len(values)}/{replies} p50_s={percentile(values, 50):.3f} "
                      f"p99_s={percentile(values, 99):.3f} max_s={max(values or [0]):.3f}",
                      flush=True)
            print(f"replies mode={mode} follow_ups_sent_after_a_reply={after}", flush=True)
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=50)
    parser.add_argument("--polling-seconds", type=float, default=60.0,
                        help="the polling run's MAILRELEASE_SYNC_SECONDS (300 by default "
                             "in production; shorter here to finish)")
    args = parser.parse_args()
    run("push", args.replies, args.polling_seconds)
    run("polling", args.replies, args.polling_seconds)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-sandbox":
        from bench.release_bench import serve_sandbox
        serve_sandbox(int(sys.argv[2]))
    else:
        main()
