"""The release worker: APScheduler is the clock, the messages table is the queue.

Fixed jobs only (release, heartbeat, schedules, sync, guard, watch), in memory, UTC.
After every run the 'release' job is moved forward to the next due time, so a message due
in 4 s leaves in 4 s, not at the next poll; `wake()` does the same at once for a message
created in this process. With push notifications, a thread of their own pulls them.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import delete, select

from scheduler.audience import guard
from scheduler.automation import campaigns, events, schedules
from scheduler.delivery.mailbox_sync import MailboxSync
from scheduler.delivery.notifications import PushNotifications
from scheduler.engine.release import AccountStates, Batch, Releaser
from scheduler.store import idempotency, queue
from scheduler.store.db import utcnow
from scheduler.store.models import WorkerHeartbeat
from scheduler.wiring import Wiring

log = logging.getLogger("mailrelease.worker")

RELEASE_JOB = "release"
HEARTBEAT_JOB = "heartbeat"
SYNC_JOB = "sync"
SCHEDULES_JOB = "schedules"
SCHEDULES_SECONDS = 60.0
WATCH_JOB = "watch"
WATCH_SECONDS = 60.0  # how often mailboxes without a watch (or near its end) are watched
EVENTS_JOB = "events"
EVENTS_SECONDS = 5.0  # how often events accepted and left pending are looked for
GUARD_JOB = "guard"
GUARD_SECONDS = 300.0  # how often sending domains' daily counts are kept
HEARTBEAT_SECONDS = 10.0
WAKE_COALESCE = dt.timedelta(milliseconds=50)


class ReleaseWorker:
    """Claims due messages and releases them, one thread per account at a time."""

    def __init__(self, wiring: Wiring, *, batch_size: int = 100,
                 max_threads: int | None = None, clock=utcnow):
        self.wiring = wiring
        self.db = db = wiring.db
        self.settings = settings = wiring.settings
        self.batch_size = batch_size
        self.clock = clock
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        problem = wiring.gmail.client_problem()
        if problem:
            log.warning("action=worker_no_client reason=%r", problem)
        self._stopping = threading.Event()
        self.releaser = Releaser(db, settings, wiring.gmail, wiring.content, wiring.links,
                                 clock=clock, stop=self._stopping)
        self.sync = MailboxSync(db, settings, wiring.gmail, clock=clock)
        self.push = (PushNotifications(db, settings, wiring.gmail, self.sync, clock=clock)
                     if PushNotifications.configured(settings) else None)
        self._senders = ThreadPoolExecutor(max_workers=max_threads or settings.send_threads,
                                           thread_name_prefix="mailrelease-send")
        self._scheduler = BackgroundScheduler(
            timezone=dt.UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._wake_pending = threading.Event()
        self._in_run = threading.Event()
        self._lock = threading.Lock()
        self._busy: set[int] = set()
        self._waiting = 0  # batches handed to the sender pool and not started yet
        # What sender threads read of each account, reused across batches.
        self._accounts = AccountStates()
        self.started_at: dt.datetime | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the clock; due messages (including those that fell due while down) go first."""
        now = self.clock()
        self.started_at = now
        self._scheduler.add_job(self.run_once, "interval", seconds=self.settings.poll_seconds,
                                id=RELEASE_JOB, next_run_time=now)
        self._scheduler.add_job(self.heartbeat, "interval", seconds=HEARTBEAT_SECONDS,
                                id=HEARTBEAT_JOB, next_run_time=now)
        self._scheduler.add_job(self._schedules, "interval", seconds=SCHEDULES_SECONDS,
                                id=SCHEDULES_JOB, next_run_time=now)
        self._scheduler.add_job(self._events, "interval", seconds=EVENTS_SECONDS,
                                id=EVENTS_JOB, next_run_time=now)
        self._scheduler.add_job(self._guard, "interval", seconds=GUARD_SECONDS, id=GUARD_JOB,
                                next_run_time=now + dt.timedelta(seconds=30))
        self._scheduler.add_job(self._sync, "interval", seconds=self.settings.sync_seconds,
                                id=SYNC_JOB,
                                next_run_time=now + dt.timedelta(seconds=min(
                                    60.0, self.settings.sync_seconds)))
        if self.push is not None:
            self._scheduler.add_job(self._watch, "interval", seconds=WATCH_SECONDS,
                                    id=WATCH_JOB, next_run_time=now)
            self.push.start()
        self._scheduler.start()
        log.info("action=worker_start worker=%s poll_seconds=%s", self.id,
                 self.settings.poll_seconds)

    def stop(self, wait: bool = True) -> None:
        """Stop claiming, finish sends in flight, give back claims not yet started."""
        self._stopping.set()
        if self.push is not None:
            self.push.stop()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        self._senders.shutdown(wait=wait)
        try:
            self.releaser.retry_pending()  # what an outage kept, if the database is back
            with self.db.write() as session:
                session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == self.id))
        except Exception:  # noqa: BLE001 - shutting down; the row just ages out
            log.exception("action=worker_stop_cleanup_failed worker=%s", self.id)
        log.info("action=worker_stop worker=%s", self.id)

    @property
    def running(self) -> bool:
        """True while the clock runs."""
        return self._scheduler.running

    # -- the clock's jobs ------------------------------------------------------------------

    def wake(self, at: dt.datetime | None = None) -> None:
        """Run the release job at `at` (default now) unless it is already due sooner."""
        if not self._scheduler.running:
            return
        at = at or self.clock()
        self._wake_pending.set()
        if self._in_run.is_set():
            # The running pass sees the flag and goes round again (moving the job now
            # would only make APScheduler skip it, as one pass runs at a time).
            return
        job = self._scheduler.get_job(RELEASE_JOB)
        if job is not None and (job.next_run_time is None or at < job.next_run_time):
            self._scheduler.modify_job(RELEASE_JOB, next_run_time=at)

    def run_once(self, wait: bool = False) -> int:
        """Hand every due message to a sender thread; set the clock for the next due one.

        Returns the number of messages dispatched. Dispatch does not wait for sends, so a
        busy (paced) account never delays another account's due messages; `wait=True`
        waits for them (for tools and tests).
        """
        dispatched, futures = 0, []
        self._in_run.set()
        try:
            # Claims that a database outage kept go back first: they are due again at once.
            self.releaser.retry_pending()
            while not self._stopping.is_set():
                self._wake_pending.clear()
                count, started = self._dispatch_due()
                dispatched += count
                futures += started
                if not self._wake_pending.is_set():
                    break
        finally:
            self._in_run.clear()
        if self._wake_pending.is_set():
            self.wake()  # a wake arrived between the last pass and the flag clearing
        self._schedule_next()
        if wait:
            for future in futures:
                future.result()
        return dispatched

    def _schedule_next(self) -> None:
        with self.db.core_read() as conn:
            nxt = queue.next_wakeup(conn)
        # Something due now belongs to a busy account: its sender wakes us when done.
        if nxt is None or nxt <= self.clock() or not self._scheduler.running:
            return
        job = self._scheduler.get_job(RELEASE_JOB)
        if job is not None and job.next_run_time and nxt < job.next_run_time:
            self._scheduler.modify_job(RELEASE_JOB, next_run_time=nxt)

    def _dispatch_due(self) -> tuple[int, list]:
        total, futures = 0, []
        while not self._stopping.is_set():
            with self._lock:
                busy = set(self._busy)
            claims_now = []
            if busy:
                # The common pass while accounts send: nothing else is due. Looking first
                # in a read keeps the write lock, which the senders need, free.
                with self.db.core_read() as conn:
                    if not queue.any_due(conn, self.clock(), busy):
                        break
            with self.db.core_write() as conn:
                claims_now = queue.claim_due(conn, self.clock(),
                                             self.settings.lease_seconds, self.batch_size,
                                             exclude_accounts=busy)
            if not claims_now:
                break
            by_account: dict[int, list[queue.Claim]] = defaultdict(list)
            for claim in claims_now:
                by_account[claim.account_id].append(claim)
            with self._lock:
                self._busy.update(by_account)
                self._waiting += len(by_account)
            for account_id, batch in by_account.items():
                futures.append(self._senders.submit(self._release_account, account_id, batch))
            total += len(claims_now)
            if len(claims_now) < self.batch_size:
                break
        return total, futures

    def _release_account(self, account_id: int, claims: list[queue.Claim]) -> int:
        """One account's messages, in order, on one thread (one Http per thread).

        After a full batch the thread claims the account's next one itself, unless other
        accounts' batches wait for a thread: a backlog then goes on without a pass of the
        dispatcher in between, and never at the others' expense.
        """
        with self._lock:
            self._waiting -= 1
        done = 0
        batch = Batch(self._accounts)
        try:
            while True:
                done += self._release_batch(claims, batch)
                if (len(claims) < self.batch_size or self._stopping.is_set()
                        or self._waiting > 0):
                    break
                with self.db.core_write() as conn:
                    more = queue.claim_due(conn, self.clock(), self.settings.lease_seconds,
                                           self.batch_size, only_account=account_id)
                if not more:
                    break
                claims = more
        finally:
            self._flush(account_id, batch)
            with self._lock:
                self._busy.discard(account_id)
            # More of this account's messages may have fallen due meanwhile. A full batch
            # says more are due now; otherwise wake a moment later, so that accounts
            # finishing together share one pass (a pass costs a claim and a look-ahead).
            self.wake(None if len(claims) >= self.batch_size
                      else self.clock() + WAKE_COALESCE)
        return done

    def _flush(self, account_id: int, batch: Batch) -> None:
        try:
            self.releaser.flush(batch)
        except Exception:  # noqa: BLE001 - unrecorded sends are reconciled, not resent
            log.exception("action=record_sent_failed account=%s", account_id)

    def _release_batch(self, claims: list[queue.Claim], batch: Batch) -> int:
        done = 0
        for claim in claims:
            try:
                if self._stopping.is_set():
                    self.releaser.give_back(claim, batch)
                    continue
                self.releaser.release(claim, batch)  # recorded by the next write, or _flush
                done += 1
            except Exception:  # noqa: BLE001 - one message must not stop the others
                # release() records its own errors; this is giving back while stopping
                # failed. The lease expires and the message is claimed again.
                log.exception("action=release_batch_error message_id=%s", claim.message_id)
        return done

    def _events(self) -> None:
        """Run the rules of events accepted with Prefer: respond-async that no web
        process ran (it stopped, or its claim ran out): one claim per event, so one
        process runs each."""
        try:
            ran = total = events.run_pending(self.db, self.clock, limit=100)
            while ran == 100:  # more are waiting
                ran = events.run_pending(self.db, self.clock, limit=100)
                total += ran
            if total:
                self.wake()
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("action=events_failed worker=%s", self.id)

    def _schedules(self) -> None:
        """Queue the recurring sends' next occurrences (a few minutes ahead), and send
        the winners of A/B tests whose decision time has come."""
        try:
            made = schedules.queue_due(self.db, self.clock(), dt.timedelta(
                seconds=self.settings.max_lateness_seconds))
            made += len(campaigns.decide_due(self.db, self.clock()))
            with self.db.write() as session:
                idempotency.purge(session, self.clock())
            if made:
                self.wake()
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("action=schedules_round_failed worker=%s", self.id)

    def _watch(self) -> None:
        assert self.push is not None
        try:
            self.push.watch_due()
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("action=watch_round_failed worker=%s", self.id)

    def _guard(self) -> None:
        try:
            with self.db.write() as s:
                for domain in guard.record_domains(s, self.clock()):
                    log.warning("action=bulk_sender domain=%s threshold=%d", domain,
                                guard.BULK_SENDER_THRESHOLD)
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("action=guard_round_failed worker=%s", self.id)

    def _sync(self) -> None:
        try:
            self.sync.run()
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("action=sync_round_failed worker=%s", self.id)

    def heartbeat(self) -> None:
        """Tell /healthz this worker is alive."""
        now = self.clock()
        with self.db.write() as session:
            row = session.scalar(select(WorkerHeartbeat).where(WorkerHeartbeat.id == self.id))
            if row is None:
                session.add(WorkerHeartbeat(id=self.id, hostname=socket.gethostname(),
                                            pid=os.getpid(), started_at=self.started_at or now,
                                            seen_at=now))
            else:
                row.seen_at = now
