"""Scale benchmark: a team with a million contacts and ten million message events on
PostgreSQL, built with COPY (not the API), then the pages a person opens, timed in the
server (Flask's test client in this process, no network), each with the plan PostgreSQL
chose for its main query.

    .venv/bin/python bench/scale_bench.py                         # the figures in README
    .venv/bin/python bench/scale_bench.py --contacts 100000 --events-per-message 10

A private PostgreSQL cluster is started here (Debian's binaries, as the tests do). Each
contact has one message (sent, scheduled, held, cancelled or failed, spread over 90 days)
with its events (scheduled, sent, opened, clicked), so 1,000,000 contacts make 1,000,000
messages and about 10,000,000 events. Each page is asked 5 times; the table shows the
median and the slowest. Goal (issue 18): every page under 300 ms server time.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app import create_app, web_sessions  # noqa: E402
from app.tokens import create_token  # noqa: E402
from scheduler.audience import accounts  # noqa: E402
from scheduler.settings import Settings  # noqa: E402
from scheduler.store import queue  # noqa: E402
from scheduler.store.db import utcnow  # noqa: E402
from scheduler.store.migrate import upgrade  # noqa: E402
from scheduler.store.models import Segment  # noqa: E402
from scheduler.wiring import Wiring  # noqa: E402
from tests import postgres  # noqa: E402

ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", None)
PLANS = ("free", "pro", "team")
STATUSES = ("sent",) * 7 + ("scheduled", "held", "cancelled", "failed")
REPEATS = 5


def build(db, team_id: int, account_id: int, contacts: int, per_message: int) -> dict:
    """COPY the contacts, one message each and its events; returns a few ids to open."""
    now = utcnow()
    rnd = random.Random(7)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        started = time.monotonic()
        with cur.copy("COPY contact (team_id, email, name, timezone, attributes, "
                      "subscription, created_at, updated_at) FROM STDIN") as copy:
            for i in range(contacts):
                copy.write_row((team_id, f"person{i}@example.org", f"Person {i}",
                                ZONES[i % 4], json.dumps({"plan": PLANS[i % 3],
                                                          "city": f"City {i % 500}"}),
                                "unsubscribed" if i % 50 == 0 else "subscribed", now, now))
        raw.commit()
        print(f"  {contacts:,} contacts in {time.monotonic() - started:.0f} s", flush=True)
        cur.execute("SELECT min(id) FROM contact WHERE team_id = %s", (team_id,))
        first_contact = cur.fetchone()[0]
        started = time.monotonic()
        events = 0
        tally: Counter = Counter()
        event_rows = tempfile.TemporaryFile("w+")
        with cur.copy("COPY message (id, team_id, account_id, contact_id, to_addr, from_addr, "
                      "subject_tpl, subject, html_tpl, follow_postpone, data, transactional, "
                      "tracking, opens, clicks, machine_opens, machine_clicks, status, "
                      "needs_reconcile, attempts, rfc822_id, release_at, sent_at, error, "
                      "created_at, updated_at) FROM STDIN") as copy:
            for i in range(contacts):
                mid = uuid.UUID(int=rnd.getrandbits(128)).hex
                status = STATUSES[i % len(STATUSES)]
                created = now - dt.timedelta(days=90 * i / contacts)
                release = created + dt.timedelta(minutes=5 if status != "scheduled" else
                                                 60 * 24 * 3)
                sent = release if status == "sent" else None
                opens = 1 if status == "sent" and i % 3 == 0 else 0
                clicks = 1 if opens and i % 2 == 0 else 0
                copy.write_row((mid, team_id, account_id, first_contact + i,
                                f"Person {i} <person{i}@example.org>", "ada@example.com",
                                "News for {{ name }}", f"News for Person {i}", "<p>News</p>",
                                False, "{}", False, True, opens, clicks, 0, 0, status, False,
                                1 if sent else 0, f"<{mid}@example.com>", release, sent,
                                "the daily limit was reached" if status == "held" else None,
                                created, created))
                kinds = ["scheduled"] + (["sent"] if sent else []) + (
                    ["opened"] * opens) + (["clicked"] * clicks)
                # Pad the sent ones to the events a message gathers over its life
                # (repeat opens, proxies): per_message on average over all messages.
                while sent and len(kinds) < per_message * len(STATUSES) // 7:
                    kinds.append("machine_open")
                for k, kind in enumerate(kinds):
                    if kind in queue.OUTCOMES and kind not in kinds[:k]:
                        # What recording the event keeps (queue.record_event).
                        tally[(kind, queue.hour_of(created + dt.timedelta(minutes=k)))] += 1
                    event_rows.write(f"{mid}\t{kind}\t"
                                     f"{(created + dt.timedelta(minutes=k)).isoformat()}\t\\N\n")
                events += len(kinds)
        raw.commit()
        print(f"  {contacts:,} messages in {time.monotonic() - started:.0f} s", flush=True)
        started = time.monotonic()
        event_rows.seek(0)
        with cur.copy("COPY message_event (message_id, type, at, detail) FROM STDIN") as c2:
            while block := event_rows.read(1 << 20):
                c2.write(block)
        with cur.copy("COPY outcome_count (team_id, campaign_id, kind, hour, n) "
                      "FROM STDIN") as c3:
            for (kind, hour), n in tally.items():
                c3.write_row((team_id, 0, kind, hour, n))
        raw.commit()
        event_rows.close()
        print(f"  {events:,} message events in {time.monotonic() - started:.0f} s", flush=True)
        started = time.monotonic()
        cur.execute("ANALYZE")
        raw.commit()
        print(f"  ANALYZE in {time.monotonic() - started:.0f} s", flush=True)
        middle = first_contact + contacts // 2
        return {"contact": middle, "events": events}
    finally:
        raw.close()


def explain(db, sql: str, params: dict) -> str:
    """The plan's top line and whether it reads by index (EXPLAIN ANALYZE)."""
    with db.engine.connect() as conn:
        plan = [r[0] for r in conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params)]
    scans = [line.strip().removeprefix("->  ") for line in plan if "Scan" in line]
    took = next((line for line in plan if line.startswith("Execution Time")), "")
    return "; ".join(s.split("  (")[0] for s in scans[:3]) + f" ({took.lower()})"


def import_rows(rows: int) -> None:
    """A `rows`-row CSV imported as the page and the CLI do (contacts.import_csv) into an
    empty team on PostgreSQL: the time and this process's peak memory."""
    import csv
    import io
    import resource

    from scheduler.audience import contacts
    with postgres.private_cluster() as (server, _control), tempfile.TemporaryDirectory() as tmp:
        url = postgres.new_database(server)
        upgrade(url)
        settings = Settings.from_env(instance_path=Path(tmp), env={
            "MAILRELEASE_DATABASE_URL": url, "MAILRELEASE_PUBLIC_URL": "http://127.0.0.1:9"})
        db = Wiring.build(settings).db
        with db.write() as s:
            team_id = accounts.sign_in(s, Wiring.build(settings, db).cipher,
                                       email="ada@example.com", token_info={"token": "t"},
                                       scopes=[], now=utcnow()).team_id
        path = Path(tmp) / "contacts.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["email", "name", "timezone", "plan", "city"])
            for i in range(rows):
                out.writerow([f"person{i}@example.org", f"Person {i}", ZONES[i % 3],
                              PLANS[i % 3], f"City {i % 500}"])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        with path.open("rb") as f:
            report = contacts.import_csv(db, team_id, io.BufferedReader(f), utcnow())
        took = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"import rows={rows:,} seconds={took:.0f} rows_per_s={rows / took:,.0f} "
              f"imported={report.imported:,} peak_rss_mb={peak / 1024:.0f} "
              f"(+{(peak - before) / 1024:.0f})", flush=True)
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events-per-message", type=int, default=10)
    parser.add_argument("--import-rows", type=int,
                        help="instead: time a CSV import of this many rows")
    args = parser.parse_args()
    if postgres.binaries() is None:
        sys.exit("PostgreSQL's binaries (initdb, pg_ctl) are needed")
    if args.import_rows:
        import_rows(args.import_rows)
        return
    with postgres.private_cluster() as (server, _control), tempfile.TemporaryDirectory() as tmp:
        url = postgres.new_database(server)
        settings = Settings.from_env(instance_path=Path(tmp), env={
            "MAILRELEASE_DATABASE_URL": url, "MAILRELEASE_PUBLIC_URL": "http://127.0.0.1:9",
            "MAILRELEASE_SECRET_KEY": "bench"})
        upgrade(settings.database_url)
        wiring = Wiring.build(settings)
        db = wiring.db
        with db.write() as s:
            who = accounts.sign_in(s, wiring.cipher, email="ada@example.com",
                                   token_info={"token": "t", "refresh_token": "r"},
                                   scopes=["https://www.googleapis.com/auth/gmail.send"],
                                   now=utcnow())
            sid = web_sessions.start(s, who.user_id, utcnow())
            token = create_token(s, "ada@example.com", "bench", utcnow())
        print(f"Building a team of {args.contacts:,} contacts on PostgreSQL…", flush=True)
        made = build(db, who.team_id, who.account_id, args.contacts, args.events_per_message)
        with db.write() as s:  # a saved segment, counted live on the Contacts page
            s.add(Segment(team_id=who.team_id, name="Pro plan", conditions=[
                {"field": "contact.plan", "op": "equals", "value": "pro"}],
                created_at=utcnow()))
        app = create_app(wiring)
        app.config["WTF_CSRF_ENABLED"] = False  # the bench posts the count as the page would
        client = app.test_client()
        with client.session_transaction() as session:
            session.update(user_id=who.user_id, team_id=who.team_id, email="ada@example.com",
                           sid=sid)
        pages = {
            "queue (all, by release time)": "/",
            "queue: the Scheduled tab": "/?status=scheduled",
            "queue: search a recipient": "/?q=person4242%40",
            "contact search (address or name)": "/contacts?q=person777777",
            "contact search (attribute)": "/contacts?attribute=plan&value=pro",
            "a segment's live size (plan is pro)": "/segments/count",
            "a contact's history": f"/contacts/{made['contact']}",
            "dashboard (30 days)": "/dashboard?days=30&tz=UTC",
            "the API's message list": "/api/v1/messages?limit=100",
        }
        print(f"\n{'page':40} {'median ms':>10} {'slowest ms':>11}  status")
        results = {}
        for name, path in pages.items():
            times, status = [], None
            for _ in range(REPEATS):
                started = time.perf_counter()
                if path == "/segments/count":  # what the page's script asks
                    resp = client.post(path, data={"segment_id": "1"})
                else:
                    resp = client.get(path, headers={"Authorization": f"Bearer {token}"}
                                      if path.startswith("/api/") else {})
                times.append((time.perf_counter() - started) * 1000)
                status = resp.status_code
            results[name] = times
            print(f"{name:40} {statistics.median(times):10.0f} {max(times):11.0f}  {status}",
                  flush=True)
        print("\nPlans (EXPLAIN ANALYZE of each page's main query):")
        checks = {
            "queue page": ("SELECT id FROM message WHERE team_id = :t ORDER BY release_at DESC,"
                           " id DESC LIMIT 51", {"t": who.team_id}),
            "status counts": ("SELECT status, count(*) FROM message WHERE team_id = :t "
                              "GROUP BY status", {"t": who.team_id}),
            "a contact's messages": ("SELECT id FROM message WHERE team_id = :t AND "
                                     "contact_id = :c ORDER BY created_at DESC LIMIT 50",
                                     {"t": who.team_id, "c": made["contact"]}),
            "contact search": ("SELECT id FROM contact WHERE team_id = :t AND (email LIKE "
                               ":q OR lower(name) LIKE :q) ORDER BY id LIMIT 101",
                               {"t": who.team_id, "q": "%person777777%"}),
            "recipient search": ("SELECT id FROM message WHERE team_id = :t AND (lower(to_addr)"
                                 " LIKE :q OR lower(coalesce(subject, subject_tpl)) LIKE :q) "
                                 "ORDER BY release_at DESC, id DESC LIMIT 51",
                                 {"t": who.team_id, "q": "%person4242@%"}),
            "dashboard": ("SELECT hour, kind, sum(n) FROM outcome_count WHERE team_id = :t "
                          "AND hour >= now() - interval '30 days' GROUP BY hour, kind",
                          {"t": who.team_id}),
        }
        for name, (sql, params) in checks.items():
            print(f"  {name}: {explain(db, sql, params)}")
        slow = [n for n, t in results.items() if statistics.median(t) >= 300]
        print(f"\n{len(pages) - len(slow)} of {len(pages)} pages under 300 ms"
              + (f"; over: {', '.join(slow)}" if slow else ""))
        db.dispose()


if __name__ == "__main__":
    main()
