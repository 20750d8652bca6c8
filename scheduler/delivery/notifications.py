"""Gmail push notifications: replies, bounces and unsubscribes read within seconds.

With MAILRELEASE_PUBSUB_TOPIC and MAILRELEASE_PUBSUB_SUBSCRIPTION set:
  watch    each connected mailbox with read access is watched (`users.watch`, INBOX only,
           so our own sends spend none of Gmail's one-a-second notification budget) when
           it has no watch, and again every day (a watch lapses after 7 days). A
           failure is kept on the account with its fix, shown on the Accounts page, and
           tried again with backoff (10 min doubling, at most 6 h); it never stops sending.
  push     with MAILRELEASE_PUBSUB_PUSH_AUDIENCE instead of a subscription, Pub/Sub posts
           each notification to POST /hooks/gmail-push (app/hooks.py), which keeps it once
           its OIDC token checks out; a worker thread reads the mailboxes they name.
  pull     a worker thread pulls the subscription; the notifications of one pull are
           coalesced by mailbox, and each mailbox named is read from its stored history
           cursor (never from the notification's id, so duplicates and out-of-order
           deliveries are harmless). A notification is acknowledged once its mailbox was
           read; if another worker is reading that mailbox, it comes back in a few
           seconds (its ack deadline is shortened), so nothing that arrived meanwhile is
           missed.
Polling stays as the safety net, hourly unless MAILRELEASE_SYNC_SECONDS says otherwise.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading

from prometheus_client import Counter
from sqlalchemy import and_, delete, or_, select, update

from gmail_client.errors import GmailError
from gmail_client.oauth import can_read
from gmail_client.pubsub import PubSub
from scheduler.delivery.mailbox_sync import MailboxSync
from scheduler.engine.connections import Gmail
from scheduler.settings import Settings
from scheduler.store.db import Database, rowcount, utcnow
from scheduler.store.models import GmailAccount, MailboxNotification

log = logging.getLogger("mailrelease.push")

NOTIFICATIONS = Counter("mailrelease_push_notifications", "Gmail push notifications pulled, "
                        "by what became of them", ["outcome"])
WATCHES = Counter("mailrelease_watches", "users.watch calls by outcome", ["outcome"])

# Google asks for a watch to be renewed daily (it lapses after 7 days): renewed once it
# has less than 6 days left.
RENEW_BEFORE = dt.timedelta(days=6)
WATCH_RETRY = dt.timedelta(minutes=10)
WATCH_RETRY_MAX = dt.timedelta(hours=6)
BUSY_RETRY_SECONDS = 2
PULL_PAUSE_SECONDS = 1.0  # after a failed pull
PUSHED_POLL_SECONDS = 0.5  # how often a worker looks for pushed notifications
STALE_NOTIFICATION = dt.timedelta(hours=1)


def watch_problem(exc: GmailError, topic: str) -> str:
    """What to tell the account's owner about a failed users.watch, with the fix."""
    if exc.status == 403:
        return (f"Gmail may not publish to {topic}: in the Google Cloud console give "
                f"gmail-api-push@system.gserviceaccount.com the Pub/Sub Publisher role on "
                f"that topic ({exc})")
    if exc.status == 404:
        return f"the Pub/Sub topic {topic} does not exist: create it ({exc})"
    if exc.status == 400 and "precondition" in str(exc).lower():
        return f"Gmail refused the watch (FAILED_PRECONDITION): {exc}"
    return f"Gmail push notifications could not be set up now, tried again soon: {exc}"


def watch_account(db: Database, settings: Settings, gmail: Gmail, account_id: int,
                  now: dt.datetime, due=None) -> int:
    """Watch one mailbox (at sign-in, or when `due`, a condition the account must still
    meet as this worker claims it); 1 if it is watched now. A failure is kept on the
    account with its fix."""
    topic = settings.pubsub_topic or ""
    with db.write() as s:
        claimed = update(GmailAccount).where(GmailAccount.id == account_id,
                                             *(() if due is None else (due,)))
        if not rowcount(s.execute(claimed.values(watch_checked_at=now))):
            return 0  # another worker took it
        account = s.get(GmailAccount, account_id)
        if account is None or not can_read(account.scope_list):
            return 0
        s.expunge(account)
    info = gmail.cipher.decrypt(account.token_blob)
    service = gmail.for_grant(info)
    try:
        answer = service.watch(topic)
    except GmailError as exc:
        WATCHES.labels("failed").inc()
        log.warning("action=watch_failed account=%s status=%s", account.id, exc.status)
        with db.write() as s:
            s.execute(update(GmailAccount).where(GmailAccount.id == account.id)
                      .values(watch_error=watch_problem(exc, topic),
                              watch_failures=GmailAccount.watch_failures + 1))
        return 0
    WATCHES.labels("watched").inc()
    expires = dt.datetime.fromtimestamp(int(answer["expiration"]) / 1000, dt.UTC)
    values: dict = {"watch_expires_at": expires, "watch_error": None, "watch_failures": 0}
    if not account.history_id and answer.get("historyId"):
        values["history_id"] = str(answer["historyId"])  # the baseline to read from
    with db.write() as s:
        gmail.keep_refreshed(s, account.id, service, info, now)
        s.execute(update(GmailAccount).where(GmailAccount.id == account.id).values(**values))
    log.info("action=watched account=%s until=%s", account.id, expires.isoformat())
    return 1


class PushNotifications:
    """Watches the mailboxes and reads the subscription (one per worker process)."""

    def __init__(self, db: Database, settings: Settings, gmail: Gmail, sync: MailboxSync,
                 *, clock=utcnow):
        self.db, self.settings, self.gmail, self.sync = db, settings, gmail, sync
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def configured(settings: Settings) -> bool:
        """Whether this deployment uses push notifications (mailboxes are watched)."""
        return bool(settings.pubsub_topic)

    @staticmethod
    def pulling(settings: Settings) -> bool:
        """Whether workers pull the subscription (else Pub/Sub pushes to the app)."""
        return bool(settings.pubsub_subscription and settings.service_account_key)

    # -- watching ------------------------------------------------------------------------

    def watch_due(self) -> int:
        """Watch every mailbox that has no watch, or one a day old or more; returns
        how many were watched now. Each account is claimed first (one worker)."""
        now = self.clock()
        lapsing = and_(GmailAccount.status == "connected",
                       or_(GmailAccount.watch_expires_at.is_(None),
                           GmailAccount.watch_expires_at < now + RENEW_BEFORE))
        with self.db.read() as s:
            rows = s.execute(select(GmailAccount.id, GmailAccount.watch_checked_at,
                                    GmailAccount.watch_failures).where(lapsing)).all()
        done = 0
        for row in rows:
            # After failures, tries back off: 10 min, 20 min, 40 min… at most 6 h.
            wait = min(WATCH_RETRY * 2 ** min(row.watch_failures, 10), WATCH_RETRY_MAX)
            if row.watch_checked_at is not None and row.watch_checked_at > now - wait:
                continue
            # Claimed as read: another worker that got here first changed it.
            same = (GmailAccount.watch_checked_at.is_(None) if row.watch_checked_at is None
                    else GmailAccount.watch_checked_at == row.watch_checked_at)
            done += watch_account(self.db, self.settings, self.gmail, row.id, now,
                                  and_(lapsing, same))
        return done

    # -- pulling -------------------------------------------------------------------------

    def start(self) -> None:
        """Pull in a thread of its own until `stop`."""
        self._thread = threading.Thread(target=self._run, name="push", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        client = None
        if self.pulling(self.settings):
            assert self.settings.service_account_key and self.settings.pubsub_subscription
            client = PubSub(self.settings.service_account_key,
                            self.settings.pubsub_subscription,
                            api_endpoint=self.settings.pubsub_api_endpoint)
        while not self._stop.is_set():
            try:
                if client is not None:
                    self.pull_once(client)
                elif not self.drain_once():
                    self._stop.wait(PUSHED_POLL_SECONDS)
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("action=notifications_failed")
                self._stop.wait(PULL_PAUSE_SECONDS)

    def drain_once(self) -> int:
        """Read the mailboxes that pushed notifications (POST /hooks/gmail-push) name, and
        forget those notifications; returns how many were forgotten. A mailbox another
        worker is reading keeps its notifications for the next round."""
        with self.db.read() as s:
            rows = s.execute(select(MailboxNotification.id, MailboxNotification.email)
                             .order_by(MailboxNotification.id).limit(500)).all()
        by_email: dict[str, list[int]] = {}
        for row in rows:
            by_email.setdefault(row.email, []).append(row.id)
        done: list[int] = []
        for email, ids in by_email.items():
            outcome = self._read_mailbox(email)
            if outcome != "busy" and outcome != "failed":
                NOTIFICATIONS.labels(outcome).inc(len(ids))
                done += ids
        with self.db.write() as s:
            if done:
                s.execute(delete(MailboxNotification).where(MailboxNotification.id.in_(done)))
            # One whose mailbox keeps failing is given up after a while: polling reads it.
            s.execute(delete(MailboxNotification).where(
                MailboxNotification.received_at < self.clock() - STALE_NOTIFICATION))
        return len(done)

    def _read_mailbox(self, email: str) -> str:
        """Read the mailbox a notification names: read, unknown, busy or failed."""
        with self.db.read() as s:
            account_id = s.scalar(select(GmailAccount.id).where(
                GmailAccount.email == email, GmailAccount.status == "connected"))
        if account_id is None:
            return "unknown"  # not ours (or disconnected): nothing to read
        try:
            read = self.sync.sync_account(account_id, force=True)
        except GmailError as exc:
            log.warning("action=push_sync_failed account=%s reason=%s", account_id, exc)
            return "failed"
        return "busy" if read is None else "read"

    def pull_once(self, client: PubSub) -> int:
        """One pull: read each mailbox named, acknowledge what was read. Returns how many
        notifications were acknowledged."""
        found = client.pull()
        by_email: dict[str, list[str]] = {}
        for notification in found:
            by_email.setdefault(notification.email, []).append(notification.ack_id)
        done: list[str] = []
        busy: list[str] = []
        for email, ack_ids in by_email.items():
            outcome = self._read_mailbox(email)
            if outcome == "busy":
                busy += ack_ids  # another worker is reading it: again in a moment
            elif outcome != "failed":  # a failure: delivered again after the ack deadline
                NOTIFICATIONS.labels(outcome).inc(len(ack_ids))
                done += ack_ids
        client.acknowledge(done)
        client.extend(busy, BUSY_RETRY_SECONDS)
        return len(done)
