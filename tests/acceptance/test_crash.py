"""Acceptance: real worker processes killed with SIGKILL mid-send, then restarted."""
from __future__ import annotations

import collections
import os
import signal

from sqlalchemy import func, select

from scheduler.commands import NewMessage
from scheduler.engine import messages
from scheduler.store.db import utcnow
from scheduler.store.models import Message, User
from tests.helpers import start_worker, wait_for, worker_env


def queue_messages(live, emails: list[str], count: int) -> list[str]:
    """`count` messages spread over the given senders, all due now (the real domain code)."""
    ids = []
    with live.db.read() as s:
        users = {u.email: u for u in s.scalars(select(User))}
        prepared = [messages.prepare_message(
            s, team_id=users[emails[n % len(emails)]].personal_team_id,
            user_id=users[emails[n % len(emails)]].id, now=utcnow(),
            command=NewMessage(to=f"r{n}@example.org", subject="Crash test {{ n }}",
                               html="<p>{{ n }}</p>", data={"n": n}))
            for n in range(count)]
    with live.db.write() as s:
        for one in prepared:
            ids.append(messages.store_message(s, one).id)
    return ids


def statuses(live) -> collections.Counter:
    with live.db.read() as s:
        return collections.Counter(dict(s.execute(
            select(Message.status, func.count()).group_by(Message.status)).all()))


def assert_exactly_once(live, ids):
    """Every message sent, each exactly once in Gmail, with the ids recorded."""
    sent = live.sandbox.sent()
    by_header = collections.Counter(m["messageId"] for m in sent)
    duplicates = {k: v for k, v in by_header.items() if v > 1}
    assert not duplicates, f"{len(duplicates)} messages sent more than once"
    with live.db.read() as s:
        rows = s.execute(select(Message.rfc822_id, Message.status, Message.gmail_message_id)
                         .where(Message.id.in_(ids))).all()
    assert all(r.status == "sent" for r in rows), collections.Counter(r.status for r in rows)
    gmail_ids = {m["messageId"]: m["id"] for m in sent}
    assert {r.rfc822_id for r in rows} == set(gmail_ids), "lost or foreign messages"
    assert all(gmail_ids[r.rfc822_id] == r.gmail_message_id for r in rows)


def crash_and_recover(live, ids, tmp_path, workers=2, kills=2, **env):
    """Run `workers` processes, SIGKILL them all `kills` times mid-release, then finish."""
    envs = worker_env(live, MAILRELEASE_LEASE_SECONDS="2", MAILRELEASE_SENDS_PER_SECOND="0",
                      **env)
    total = len(ids)
    for round_ in range(kills):
        procs = [start_worker(envs, tmp_path / f"worker{i}.log") for i in range(workers)]
        target = total * (round_ + 1) // (kills + 1)
        try:
            wait_for(lambda target=target: live.sandbox.count() >= target, 120, 0.02)
        finally:
            for proc in procs:
                os.kill(proc.pid, signal.SIGKILL)
            for proc in procs:
                proc.wait()
    procs = [start_worker(envs, tmp_path / f"worker{i}.log") for i in range(workers)]
    try:
        wait_for(lambda: statuses(live).get("sent", 0) == total, 180, 0.2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            assert proc.wait(timeout=30) == 0


def test_sigkill_mid_send_on_sqlite__none_twice_none_lost(live_no_worker, tmp_path):
    live = live_no_worker
    senders = ["ada@example.com", "bob@example.com", "cy@example.com"]
    for email in senders:
        live.sign_in(email)
    live.sandbox.configure(send_latency=0.01)
    ids = queue_messages(live, senders, 300)
    crash_and_recover(live, ids, tmp_path)
    assert_exactly_once(live, ids)
