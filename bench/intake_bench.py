"""Event intake benchmark: events per second and latency of POST /events (answered at once,
or with Prefer: respond-async) and POST /events/batch, beside the stack's own limit.

    .venv/bin/python bench/intake_bench.py                 # the figures in README
    .venv/bin/python bench/intake_bench.py --only postgresql --seconds 10

For each database (SQLite; PostgreSQL, a private cluster started here) it runs
`mailrelease web` as a user does (one waitress process on SQLite; on PostgreSQL
`--processes 2`, this machine's cores, on gunicorn) and, on the same server and database,
bench/minimal_app.py: a Flask endpoint that only inserts one row. Clients (8, 32, 64 at
once, keep-alive connections, in this process) post for a few seconds each; every event
has its own id, and one rule queues a message for it. Afterwards every accepted event is
checked to have been processed exactly once (its rule's one message). The sandbox Google
only signs the user in: nothing is sent.
Goals (issue 18), on PostgreSQL: at least 1,000 events/s with batches, p99 under 100 ms
for single events, single events at least half the minimal endpoint's rate.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select  # noqa: E402

from app.tokens import create_token  # noqa: E402
from bench.minimal_app import metadata  # noqa: E402
from bench.release_bench import Sandbox, deployment  # noqa: E402
from scheduler.store.db import utcnow  # noqa: E402
from scheduler.store.models import Event, Message  # noqa: E402
from tests import postgres  # noqa: E402
from tests.helpers import free_port  # noqa: E402

CONCURRENCY = (8, 32, 64)
BATCH = 100


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


def _up(url: str, timeout: float = 60) -> None:
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def hammer(port: int, path: str, make_body, headers: dict, clients: int,
           seconds: float, per_request: int) -> dict:
    """`clients` threads posting for `seconds`; events per second and request latency."""
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, n = [], 0
        while time.monotonic() < stop:
            body = json.dumps(make_body(k, n)).encode()
            started = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json",
                                                  **headers})
                answer = conn.getresponse()
                answer.read()
                ok = answer.status in (200, 202)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                ok = False
            mine.append(time.perf_counter() - started)
            if not ok:
                with lock:
                    failures[0] += 1
            n += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - began
    return {"events_s": (len(latencies) - failures[0]) * per_request / wall,
            "p50": statistics.median(latencies) * 1000 if latencies else 0,
            "p99": pct(latencies, 0.99) * 1000, "failures": failures[0]}


def stack(name: str, db_url: str, processes: int, seconds: float, sandbox: Sandbox,
          folder: Path) -> list[tuple]:
    """Every scenario on one database: rows of (scenario, clients, figures)."""
    settings, env, db = deployment(sandbox, folder, 1, MAILRELEASE_DATABASE_URL=db_url)
    env = {**os.environ, **env, "MAILRELEASE_INSTANCE_PATH": str(folder / "instance"),
           "MAILRELEASE_PUBLIC_URL": "http://127.0.0.1"}
    with db.write() as s:
        token = create_token(s, "sender0@example.com", "bench", utcnow())
    engine = create_engine(db_url)
    metadata.create_all(engine)
    engine.dispose()
    web_port, minimal_port = free_port(), free_port()
    logs = open(folder / "servers.log", "w")
    servers = [
        subprocess.Popen([sys.executable, "-m", "app", "web", "--port", str(web_port),
                          "--processes", str(processes), "--threads", "8"], env=env,
                         stdout=logs, stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, str(ROOT / "bench" / "minimal_app.py"), db_url,
                          str(minimal_port), str(processes), "8"], env=env, stdout=logs,
                         stderr=subprocess.STDOUT)]
    rows = []
    try:
        web, minimal = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{minimal_port}"
        _up(web)
        _up(minimal)
        auth = {"Authorization": f"Bearer {token}"}
        api = requests.Session()
        api.headers.update(auth)
        template = api.post(web + "/api/v1/templates", json={
            "name": "welcome", "subject": "Welcome", "html": "<p>Hi {{ name }}</p>"}).json()
        api.post(web + "/api/v1/rules", json={"event": "signup",
                                              "template_id": template["id"]})
        run = [0]

        def single(k: int, n: int) -> dict:
            return {"id": f"{run[0]}-{k}-{n}", "name": "signup",
                    "email": f"p{k}-{n}@example.org", "data": {"name": "P"}}

        def batch(k: int, n: int) -> dict:
            return {"events": [single(k, n * BATCH + i) for i in range(BATCH)]}

        scenarios = [("minimal endpoint (one INSERT)", minimal_port, "/insert", single, {}, 1),
                     ("POST /events", web_port, "/api/v1/events", single, auth, 1),
                     ("POST /events, respond-async", web_port, "/api/v1/events", single,
                      {**auth, "Prefer": "respond-async"}, 1),
                     (f"POST /events/batch ({BATCH})", web_port, "/api/v1/events/batch",
                      batch, auth, BATCH),
                     (f"POST /events/batch ({BATCH}), respond-async", web_port,
                      "/api/v1/events/batch", batch, {**auth, "Prefer": "respond-async"},
                      BATCH)]
        for label, port, path, body, headers, per in scenarios:
            for clients in CONCURRENCY:
                run[0] += 1
                figures = hammer(port, path, body, headers, clients, seconds, per)
                rows.append((label, clients, figures))
                print(f"  {name:<10} {label:<40} {clients:>3} clients "
                      f"{figures['events_s']:8.0f} events/s  p50 {figures['p50']:7.1f} ms  "
                      f"p99 {figures['p99']:7.1f} ms  failures {figures['failures']}",
                      flush=True)
        # Every accepted event processed once: pending ones finish (the web processes run
        # them after their answers), then one message each.
        deadline, waited = time.monotonic() + 900, time.monotonic()

        def pending() -> int:
            with db.read() as s:  # a new read each time: a snapshot would never change
                return s.scalar(select(func.count()).select_from(Event).where(
                    Event.status == "pending")) or 0
        first = left = pending()
        while left and time.monotonic() < deadline:
            time.sleep(1)
            left = pending()
        if first:
            spent = time.monotonic() - waited
            print(f"  {name:<10} {first:,} accepted events were still pending after the "
                  f"runs; run after their answers at {(first - left) / spent:.0f} events/s",
                  flush=True)
        with db.read() as s:
            accepted = s.scalar(select(func.count()).select_from(Event))
            made = s.scalar(select(func.count()).select_from(Message))
            distinct = s.scalar(select(func.count(func.distinct(Message.event_id))))
        print(f"  {name:<10} exactly once: {accepted:,} events accepted, {left} pending, "
              f"{made:,} messages for {distinct:,} distinct events", flush=True)
        rows.append(("exactly once", 0, {"ok": made == accepted == distinct and not left}))
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            proc.wait(timeout=30)
        logs.close()
        db.dispose()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sandbox = Sandbox()
    results: dict[str, list] = {}
    try:
        if args.only in (None, "sqlite"):
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{Path(folder) / 'bench.db'}"
                results["sqlite"] = stack("sqlite", url, 1, args.seconds, sandbox,
                                          Path(folder))
        if args.only in (None, "postgresql"):
            with postgres.private_cluster(max_connections=300) as (server, _), \
                    tempfile.TemporaryDirectory() as folder:
                results["postgresql"] = stack("postgresql", postgres.new_database(server), 2,
                                              args.seconds, sandbox, Path(folder))
    finally:
        sandbox.proc.terminate()
    missed = [name for name, rows in results.items()
              for label, _, figures in rows if label == "exactly once" and not figures["ok"]]
    pg = results.get("postgresql")
    if pg:
        def best(*labels):
            return max(f["events_s"] for lab, _, f in pg if lab in labels)
        singles = ("POST /events", "POST /events, respond-async")
        batches = tuple(lab for lab, _, _ in pg if lab.startswith("POST /events/batch"))
        single_p99 = min(f["p99"] for lab, _, f in pg if lab in singles)
        checks = {"batches at 1,000 events/s": best(*batches) >= 1000,
                  "single p99 under 100 ms": single_p99 < 100,
                  "single at half the minimal endpoint's rate":
                      best(*singles) >= best("minimal endpoint (one INSERT)") / 2}
        for goal, ok in checks.items():
            print(f"goal {goal}: {'met' if ok else 'MISSED'}")
            if not ok:
                missed.append(goal)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
