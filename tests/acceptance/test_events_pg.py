"""Accepted events with several real processes on PostgreSQL: three processes sweeping the
same pending events at the same instant run each event's rules once (one claim per
event, and the rule's one message per event behind it)."""
from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import func, select

from scheduler.automation import events
from scheduler.store.db import utcnow
from scheduler.store.models import Event, Message

SWEEP = """
import sys, time
from scheduler.automation import events
from scheduler.store.db import Database, utcnow
db = Database(sys.argv[1])
with db.read() as s:
    pass  # connected before the start
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
done = 0
while True:
    ran = events.run_pending(db, utcnow, limit=20)
    done += ran
    with db.read() as s:
        from sqlalchemy import func, select
        from scheduler.store.models import Event
        left = s.scalar(select(func.count()).select_from(Event).where(Event.status == "pending"))
    if not left:
        break
print(done)
"""


def test_three_processes_sweeping_at_once_run_each_accepted_event_once(serve, pg_url):
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url)
    api = live.user()
    welcome = api.post(f"{live.url}/api/v1/templates", json={
        "name": "welcome", "subject": "Welcome", "html": "<p>Hi</p>"}).json()
    api.post(f"{live.url}/api/v1/rules", json={"event": "signup",
                                               "template_id": welcome["id"]})
    with live.db.write() as s:
        for n in range(150):
            events.accept_event(s, 1, None, {"id": f"e{n}", "name": "signup",
                                             "email": f"p{n}@example.org", "data": {},
                                             "occurred_at": None}, utcnow())
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", SWEEP, pg_url, str(start)],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    finished = [int(o.strip()) for o in outs]
    assert sum(finished) == 150, finished
    with live.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 150
        assert s.scalar(select(func.count(func.distinct(Message.event_id)))) == 150
        assert set(s.scalars(select(Event.status))) == {"done"}
