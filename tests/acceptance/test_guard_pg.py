"""The sender guard's decisions with several real processes on PostgreSQL: a domain
crossing Gmail's bulk-sender threshold is recorded once, and bounces recorded at the same
moment by different workers pause their campaign once."""
from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import insert

from scheduler.store.db import utcnow
from scheduler.store.models import Campaign, Message, MessageEvent, SendingDomain
from tests.integration.test_guard import _sent_rows

DECIDE = """
import sys, time
from scheduler.audience import guard
from scheduler.store.db import Database, utcnow
from scheduler.store.models import Message
url, start, what = sys.argv[1], float(sys.argv[2]), sys.argv[3]
db = Database(url)
with db.read() as s:
    s.get(Message, what) if what != "domains" else None  # connect before the start
while time.time() < start:
    time.sleep(0.001)
with db.write() as s:
    if what == "domains":
        print(len(guard.record_domains(s, utcnow())))
    else:
        print(len(guard.after_signal(s, s.get(Message, what), utcnow())))
"""


def _at_once(url: str, whats: list[str]) -> list[int]:
    """Run one deciding process per item, all starting at the same instant."""
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", DECIDE, url, str(start), what],
                              stdout=subprocess.PIPE, text=True) for what in whats]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    return [int(o.strip()) for o in outs]


def test_three_processes_record_a_bulk_sender_and_a_pause_once(serve, pg_url):
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url)
    live.sign_in()
    now = utcnow()
    with live.db.write() as s:
        s.execute(insert(Message), _sent_rows(1, 5000, "gmail.com", now))
    assert sum(_at_once(pg_url, ["domains"] * 3)) == 1
    with live.db.read() as s:
        assert s.get(SendingDomain, "example.com").bulk_since is not None
    # A campaign's 40 sends, 6 of which bounced; three workers record three at once.
    with live.db.write() as s:
        campaign = Campaign(team_id=1, name="c", variants=[], audience="all", status="done",
                            created_at=now)
        s.add(campaign)
        s.flush()
        rows = _sent_rows(1, 40, "example.org", now)
        for row in rows:
            row["campaign_id"] = campaign.id
        s.execute(insert(Message), rows)
        bounced = [r["id"] for r in rows[:6]]
        s.execute(insert(MessageEvent), [{"message_id": mid, "type": "bounced", "at": now,
                                          "detail": {"hard": True}} for mid in bounced])
        campaign_id = campaign.id
    assert sum(_at_once(pg_url, bounced[:3])) == 1
    with live.db.read() as s:
        paused = s.get(Campaign, campaign_id)
        assert paused.paused_at is not None and "6 of its last 40" in paused.paused_reason
