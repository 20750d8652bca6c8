"""Release-engine benchmarks against the sandbox Google (a separate process on loopback).

    .venv/bin/python bench/release_bench.py            # the figures in README
    .venv/bin/python bench/release_bench.py --quick    # a smaller run

Prints one line per measurement. Scenarios:
  steady   each account has 2 messages due per second (under Gmail's 2.5/s quota) for
           N seconds; 1, 10 and 100 accounts; sandbox latency 0 and 150 ms per send.
           Reports released/s and release lag (sent_at - release_at) p50 / p99 / max.
  overhead 1,000 messages of one account due at once, pacing off, 0 ms latency: the
           engine's own time per message (claim, render, MIME, lease, record), i.e. the
           worker's wall time minus the time spent inside messages.send; and the CPU
           per message with 100 accounts and pacing on, as deployed. Also the sandbox's
           CPU per send, which shares this machine's cores with the worker.
  naive    the same sends done the naive way: google-api-python-client in a plain loop.
  memory   a `mailrelease worker` process with 100,000 messages queued for later: its RSS.
  processes  PostgreSQL (a private cluster) with 1, 2 and 4 `mailrelease worker` processes
           sharing one queue: 3,000 messages of 100 accounts all due at once, 150 ms per
           send at the sandbox; released/s and release lag, and every message sent once.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select

from gmail_client import api as gmail_api
from gmail_client.oauth import SCOPE_READONLY, SCOPE_SEND
from scheduler.audience import accounts
from scheduler.settings import Settings
from scheduler.store.crypto import TokenCipher
from scheduler.store.db import Database, utcnow
from scheduler.store.migrate import upgrade
from scheduler.store.models import GmailAccount, Message
from scheduler.wiring import Wiring
from scheduler.worker import ReleaseWorker

CLIENT_ID, CLIENT_SECRET = "bench.apps.googleusercontent.com", "bench-secret"
REDIRECT = "http://127.0.0.1:9/auth/callback"


def serve_sandbox(port: int) -> None:
    """Child process: the sandbox Google on loopback, quiet."""
    import logging

    from werkzeug.serving import make_server

    from sandbox import create_sandbox_app
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_sandbox_app({CLIENT_ID: {"secret": CLIENT_SECRET, "redirect_uris": []}})
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


class Sandbox:
    def __init__(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-sandbox",
                                      str(self.port)], stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                requests.get(self.url + "/sandbox/api/count", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)

    def latency(self, seconds: float) -> None:
        requests.post(self.url + "/sandbox/api/settings", json={"send_latency": seconds},
                      timeout=5)

    def grant(self, email: str) -> dict:
        """The OAuth code flow as a browser and google-auth-oauthlib would run it."""
        approved = requests.post(self.url + "/o/oauth2/approve", allow_redirects=False,
                                 timeout=10, data={
                                     "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
                                     "state": "s", "email": email, "decision": "allow",
                                     "scope": [SCOPE_SEND, SCOPE_READONLY]})
        code = parse_qs(urlsplit(approved.headers["Location"]).query)["code"][0]
        return requests.post(self.url + "/token", timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}).json()

    def cpu_seconds(self) -> float:
        """CPU time the sandbox process has used (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def deployment(sandbox: Sandbox, folder: Path, n_accounts: int, **env):
    """A fresh SQLite database with `n_accounts` connected accounts; returns (settings, db)."""
    creds = folder / "credentials.json"
    from sandbox import sandbox_credentials
    creds.write_text(json.dumps(sandbox_credentials(sandbox.url, CLIENT_ID, CLIENT_SECRET,
                                                    [REDIRECT])))
    values = {"MAILRELEASE_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
              "MAILRELEASE_GOOGLE_CREDENTIALS": str(creds),
              "MAILRELEASE_GMAIL_API_ENDPOINT": sandbox.url + "/",
              **{k: str(v) for k, v in env.items()}}
    settings = Settings.from_env(instance_path=folder / "instance", env=values)
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    cipher = TokenCipher(settings.token_key)
    for n in range(n_accounts):
        token = sandbox.grant(f"sender{n}@example.com")
        info = {"token": token["access_token"], "refresh_token": token["refresh_token"],
                "expiry": None, "scopes": token["scope"].split()}
        with db.write() as s:
            accounts.sign_in(s, cipher, email=f"sender{n}@example.com", token_info=info,
                             scopes=token["scope"].split(), now=utcnow())
    return settings, values, db


def queue(db: Database, due_times: list[tuple[int, dt.datetime]]) -> None:
    """Insert messages (account index, due time) in bulk, as the API would have stored them."""
    with db.read() as s:
        accts = s.execute(select(GmailAccount.id, GmailAccount.team_id, GmailAccount.email,
                                 GmailAccount.user_id).order_by(GmailAccount.id)).all()
    now = utcnow()
    rows = []
    for i, (a, due) in enumerate(due_times):
        acct = accts[a]
        mid = f"{i:032x}"
        rows.append({"id": mid, "team_id": acct.team_id, "account_id": acct.id,
                     "created_by": acct.user_id, "to_addr": f"r{i}@example.org",
                     "from_addr": acct.email, "subject_tpl": "Hello {{ name }}",
                     "html_tpl": "<p>Hi {{ name }}, your order {{ order }} shipped.</p>",
                     "text_tpl": None, "data": {"name": f"R{i}", "order": i},
                     "status": "scheduled", "release_at": due, "needs_reconcile": False,
                     "attempts": 0, "rfc822_id": f"<mr.{mid}@example.com>",
                     "created_at": now, "updated_at": now})
    with db.write() as s:
        for start in range(0, len(rows), 5000):
            s.execute(insert(Message), rows[start:start + 5000])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class SendTimer:
    """Sums the time (wall and this thread's CPU) spent inside GmailService.send."""

    def __init__(self, expected: int = 0):
        self.total = 0.0
        self.cpu = 0.0
        self.count = 0
        self.expected = expected
        self.all_sent = threading.Event()  # set after `expected` sends returned
        self.lock = threading.Lock()
        self._orig = gmail_api.GmailService.send
        timer = self

        def timed(svc, *args, **kwargs):
            t, c = time.perf_counter(), time.thread_time()
            try:
                return timer._orig(svc, *args, **kwargs)
            finally:
                with timer.lock:
                    timer.total += time.perf_counter() - t
                    timer.cpu += time.thread_time() - c
                    timer.count += 1
                    if timer.count >= timer.expected:
                        timer.all_sent.set()
        gmail_api.GmailService.send = timed

    def close(self):
        gmail_api.GmailService.send = self._orig


def run_until_sent(settings, db, total: int, timeout: float,
                   timer: SendTimer | None = None) -> float:
    """Run a worker until all `total` messages are recorded sent; the wall time it took.

    With a `timer`, nothing polls the database until the sends are made (a poll costs CPU
    that would be counted as the engine's); then a poll every 5 ms finds the last record.
    """
    worker = ReleaseWorker(Wiring.build(settings, db))
    started = time.perf_counter()
    worker.start()
    deadline = time.monotonic() + timeout
    if timer is not None:
        timer.all_sent.wait(timeout)
    try:
        while time.monotonic() < deadline:
            with db.read() as s:
                done = s.scalar(select(Message.id).where(Message.status != "sent").limit(1))
            if done is None:
                break
            time.sleep(0.005 if timer is not None else 0.2)
        else:
            raise SystemExit(f"not all {total} messages were sent within {timeout}s")
    finally:
        worker.stop()
    return time.perf_counter() - started


def steady(sandbox: Sandbox, n_accounts: int, latency: float, seconds: int) -> None:
    per_account_rate = 2.0
    with tempfile.TemporaryDirectory() as tmp:
        settings, _, db = deployment(sandbox, Path(tmp), n_accounts)
        sandbox.latency(latency)
        t0 = utcnow() + dt.timedelta(seconds=3)
        due = [(a, t0 + dt.timedelta(seconds=(k + a / n_accounts) / per_account_rate))
               for a in range(n_accounts) for k in range(int(seconds * per_account_rate))]
        queue(db, due)
        run_until_sent(settings, db, len(due), seconds + 120)
        with db.read() as s:
            rows = s.execute(select(Message.release_at, Message.sent_at)).all()
        lags = [(r.sent_at - r.release_at).total_seconds() for r in rows]
        span = (max(r.sent_at for r in rows) - min(r.release_at for r in rows)).total_seconds()
        print(f"steady accounts={n_accounts:<3} latency_ms={latency * 1000:<4.0f} "
              f"messages={len(rows):<5} released_per_s={len(rows) / span:7.1f} "
              f"lag_p50_ms={percentile(lags, 50) * 1000:6.0f} "
              f"lag_p99_ms={percentile(lags, 99) * 1000:6.0f} "
              f"lag_max_ms={max(lags) * 1000:6.0f}", flush=True)
        db.dispose()


def overhead(sandbox: Sandbox, count: int, n_accounts: int = 1, pacing: bool = False) -> None:
    """The engine's own cost per message.

    One account with pacing off: wall time minus time inside messages.send, since one
    account's sends run one after another; the daily count is read before every send, as
    nothing bounds what other workers may send meanwhile. Many accounts with pacing on (the
    production set-up): CPU per message only, as wall time is the pacing's.
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = {} if pacing else {"MAILRELEASE_SENDS_PER_SECOND": 0}
        settings, _, db = deployment(sandbox, Path(tmp), n_accounts, **env)
        sandbox.latency(0)
        queue(db, [(k % n_accounts, utcnow()) for k in range(count)])
        timer = SendTimer(count)
        cpu0, sandbox_cpu0 = time.process_time(), sandbox.cpu_seconds()
        try:
            wall = run_until_sent(settings, db, count, 600, timer)
        finally:
            timer.close()
        cpu = time.process_time() - cpu0
        sandbox_cpu = sandbox.cpu_seconds() - sandbox_cpu0
        engine_cpu = (cpu - timer.cpu) / count
        line = (f"overhead accounts={n_accounts} pacing={'on' if pacing else 'off'} "
                f"messages={count} wall_s={wall:.2f} ")
        if not pacing:
            engine = (wall - timer.total) / count
            line += (f"per_message_ms={wall / count * 1000:.2f} "
                     f"in_send_ms={timer.total / count * 1000:.2f} "
                     f"engine_wall_ms={engine * 1000:.2f} ")
        print(line + f"engine_cpu_ms={engine_cpu * 1000:.2f} "
              f"send_client_cpu_ms={timer.cpu / count * 1000:.2f} "
              f"sandbox_cpu_ms={sandbox_cpu / count * 1000:.2f}", flush=True)
        db.dispose()


def naive(sandbox: Sandbox, count: int, latency: float) -> None:
    """google-api-python-client in a plain loop: build once, send `count` times."""
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build
    token = sandbox.grant("naive@example.com")
    creds = Credentials(token["access_token"], refresh_token=token["refresh_token"],
                        token_uri=sandbox.url + "/token", client_id=CLIENT_ID,
                        client_secret=CLIENT_SECRET)
    service = build("gmail", "v1", credentials=creds, static_discovery=True,
                    client_options={"api_endpoint": sandbox.url + "/"})
    sandbox.latency(latency)
    import base64
    started = time.perf_counter()
    for i in range(count):
        msg = EmailMessage()
        msg["To"], msg["From"], msg["Subject"] = f"r{i}@example.org", "naive@example.com", \
            f"Hello R{i}"
        msg.set_content(f"Hi R{i}, your order {i} shipped.")
        msg.add_alternative(f"<p>Hi R{i}, your order {i} shipped.</p>", subtype="html")
        raw = base64.urlsafe_b64encode(msg.as_bytes()).decode()
        service.users().messages().send(userId="me", body={"raw": raw}).execute()
    wall = time.perf_counter() - started
    print(f"naive messages={count} latency_ms={latency * 1000:.0f} wall_s={wall:.2f} "
          f"per_message_ms={wall / count * 1000:.2f} released_per_s={count / wall:.1f}",
          flush=True)


def memory(sandbox: Sandbox, queued: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings, env, db = deployment(sandbox, Path(tmp), 10)
        later = utcnow() + dt.timedelta(days=1)
        queue(db, [(i % 10, later + dt.timedelta(seconds=i)) for i in range(queued)])
        db.dispose()
        proc = subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT,
                                env={**os.environ, **env,
                                     "MAILRELEASE_INSTANCE_PATH": str(settings.instance_path),
                                     "MAILRELEASE_TOKEN_KEY": settings.token_key,
                                     "MAILRELEASE_LOG_LEVEL": "WARNING"})
        time.sleep(8)  # start, migrate check, several release and heartbeat ticks
        status = Path(f"/proc/{proc.pid}/status").read_text()
        fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines()
                  if line.startswith(("VmRSS", "VmHWM"))}
        proc.terminate()
        proc.wait()
        print(f"memory queued={queued} worker_rss_mb={int(fields['VmRSS']) / 1024:.0f} "
              f"worker_peak_rss_mb={int(fields['VmHWM']) / 1024:.0f}", flush=True)


def processes(sandbox: Sandbox, workers: int, count: int, latency: float = 0.15) -> None:
    """`workers` worker processes on one PostgreSQL queue, until all `count` are sent."""
    from tests import postgres
    with postgres.private_cluster() as (server, _), tempfile.TemporaryDirectory() as tmp:
        url = postgres.new_database(server)
        settings, env, db = deployment(sandbox, Path(tmp), 100,
                                       MAILRELEASE_DATABASE_URL=url)
        sandbox.latency(latency)
        before = sandbox_count(sandbox)
        due = utcnow() + dt.timedelta(seconds=5)  # after the processes have started
        queue(db, [(i % 100, due) for i in range(count)])
        procs = [subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={**os.environ, **env,
                                       "MAILRELEASE_INSTANCE_PATH": str(settings.instance_path),
                                       "MAILRELEASE_TOKEN_KEY": settings.token_key,
                                       "MAILRELEASE_LOG_LEVEL": "WARNING"})
                 for _ in range(workers)]
        try:
            stop = time.monotonic() + 600
            while time.monotonic() < stop:
                with db.read() as s:
                    done = s.scalar(select(func.count()).select_from(Message).where(
                        Message.status == "sent"))
                if done >= count:
                    break
                time.sleep(0.5)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait()
        with db.read() as s:
            rows = s.execute(select(Message.release_at, Message.sent_at)
                             .where(Message.status == "sent")).all()
        lags = [(r.sent_at - r.release_at).total_seconds() for r in rows]
        span = (max(r.sent_at for r in rows) - min(r.release_at for r in rows)).total_seconds()
        sent = sandbox_count(sandbox) - before
        print(f"processes workers={workers} messages={len(rows)} gmail_sends={sent} "
              f"released_per_s={len(rows) / span:6.1f} lag_p50_s={percentile(lags, 50):5.1f} "
              f"lag_p99_s={percentile(lags, 99):5.1f}", flush=True)
        db.dispose()


def sandbox_count(sandbox: Sandbox) -> int:
    return requests.get(sandbox.url + "/sandbox/api/count", timeout=10).json()["count"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve-sandbox", type=int)
    parser.add_argument("--only", choices=["steady", "overhead", "naive", "memory",
                                           "processes"])
    parser.add_argument("--accounts", type=int, nargs="*", default=[1, 10, 100],
                        help="account counts for the steady scenario")
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox(args.serve_sandbox)
        return
    sandbox = Sandbox()
    try:
        seconds = 5 if args.quick else 15
        if args.only in (None, "steady"):
            for latency in (0.0, 0.15):
                for n in args.accounts:
                    steady(sandbox, n, latency, seconds)
        if args.only in (None, "overhead"):
            overhead(sandbox, 300 if args.quick else 1000)
            overhead(sandbox, 300 if args.quick else 1000, n_accounts=100, pacing=True)
        if args.only in (None, "naive"):
            naive(sandbox, 300 if args.quick else 1000, 0.0)
            naive(sandbox, 50 if args.quick else 200, 0.15)
        if args.only in (None, "memory"):
            memory(sandbox, 10_000 if args.quick else 100_000)
        if args.only in (None, "processes"):
            for workers in (1, 2, 4):
                processes(sandbox, workers, 600 if args.quick else 3000)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
