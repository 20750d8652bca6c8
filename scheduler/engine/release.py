"""Releasing one claimed message, in four named steps, each returning an outcome:

    prepare  the account may send, a follow-up is still wanted, send-time content,
             render, tracking, MIME                                  -> Prepared or a status
    gate     the last checks and the pacing slot, in one conditional UPDATE that renews
             the lease (suppression, daily cap, the claim still ours) -> None or a status
    send     reconcile an earlier attempt, Gmail's messages.send, map its errors
    record   the sent row, written in the batch's next write transaction

A `Batch` carries what one sender thread's claims share: the account states read and the
sends made but not yet recorded. No step keeps state anywhere else.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import random
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import lru_cache

from prometheus_client import Counter, Histogram
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from gmail_client.api import MAX_MESSAGE_BYTES
from gmail_client.errors import (
    AmbiguousSendError,
    DailyLimitReached,
    GmailError,
    PermanentGmailError,
    ReconnectNeeded,
    TransientGmailError,
)
from gmail_client.mime import UnsendableAddress, build_message
from gmail_client.oauth import can_read
from scheduler.audience import accounts, guard
from scheduler.audience.suppression import subscription_of
from scheduler.content.amp import find_problems
from scheduler.content.attachments import AttachmentProblem, FileReader, resolve
from scheduler.content.links import (
    CLIP_BYTES,
    Links,
    decorate,
    decorate_amp,
    message_links,
)
from scheduler.content.personalize import render_message
from scheduler.content.sources import ContentFetcher, ContentUnavailable
from scheduler.engine.connections import Gmail, ServicePool
from scheduler.engine.threads import (
    LAST_CHECKS,
    STOPS_ON_MAIL,
    company_domain,
    own_addresses,
    reply_in_thread,
    wrote_since,
)
from scheduler.errors import MissingData, RenderError, TemplateError
from scheduler.settings import Settings
from scheduler.store import queue
from scheduler.store.db import Database, utcnow
from scheduler.store.models import GmailAccount, Message, MessageEvent, table

log = logging.getLogger("mailrelease.release")

RELEASES = Counter("mailrelease_releases", "Claims released, by the status they ended in",
                   ["outcome"])
HOLDS = Counter("mailrelease_holds", "Messages held, by why", ["kind"])
GMAIL_ERRORS = Counter("mailrelease_gmail_errors", "Gmail errors on send", ["kind"])
CRASHES = Counter("mailrelease_release_crashes", "Unexpected errors while releasing a "
                  "message, by exception class", ["class"])
EVENT_TO_SEND = Histogram(
    "mailrelease_event_to_send_seconds", "From an event's arrival to Gmail's answer, for "
    "messages a rule queued with no delay", buckets=(0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30))
LAG = Histogram("mailrelease_release_lag_seconds", "Gmail's answer minus the due time",
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600))

BACKOFF_MAX_SECONDS = 3600.0
FOLLOW_UP_RECHECK = dt.timedelta(hours=1)
FOLLOW_UP_SOON = dt.timedelta(seconds=10)
# Gmail's quota units: messages.send 100; the last check's threads.get 10 (and with the
# person or domain rule, messages.list 5 and a get of 5 per message found).
SEND_UNITS = 100
LAST_CHECK_UNITS = 20


def backoff(attempt: int, retry_after: float | None, rng: random.Random,
            base: float = 30.0) -> float:
    """Seconds to wait: exponential with jitter, but never less than Retry-After."""
    ceiling = min(BACKOFF_MAX_SECONDS, base * 2 ** max(0, attempt - 1))
    delay = rng.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


_ACCOUNT = select(table(GmailAccount)).where(GmailAccount.id == bindparam("b_account"))

# A thread reuses what it read of an account for this long across its batch of claims.
ACCOUNT_REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class ThreadSince:
    """What a thread follow-up's last check looks at: the thread, from when it was queued
    (the shape of a previous step's row)."""

    gmail_thread_id: str
    sent_at: dt.datetime


@dataclass
class AccountState:
    """An account as a sender thread sees it: its row, decrypted grant, sends in 24 h.

    Read once and reused for the thread's batch of that account's claims (refreshed after
    ACCOUNT_REFRESH_SECONDS or after an error changed the account), instead of per message.
    """

    row: Row
    token_info: dict
    token_blob: bytes  # the stored (encrypted) grant token_info came from
    sent_today: int
    loaded: float  # time.monotonic() when read


DAY = accounts.DAY


class AccountStates:
    """What the worker's sender threads read of each account, kept between batches.

    An account is released by one thread at a time (the worker's busy set), but the map
    itself is shared by all of them: every access takes the lock.
    """

    def __init__(self) -> None:
        self._states: dict[int, AccountState] = {}
        self._lock = threading.Lock()

    def get(self, account_id: int) -> AccountState | None:
        with self._lock:
            return self._states.get(account_id)

    def put(self, account_id: int, state: AccountState) -> None:
        with self._lock:
            self._states[account_id] = state

    def forget(self, account_id: int) -> None:
        """Read the account again next time (an error may have changed it)."""
        with self._lock:
            self._states.pop(account_id, None)


@dataclass(frozen=True)
class Sent:
    """A send Gmail accepted, not yet recorded on its row."""

    claim: queue.Claim
    sent_at: dt.datetime
    result: dict
    subject: str
    warning: str | None = None


@dataclass
class Batch:
    """One sender thread's run over claims: the account states it may reuse, the sends it
    made that are not recorded yet (written in its next write transaction, or by
    `Releaser.flush`), and whether a Gmail request is in flight (an unexpected error then
    leaves the send in doubt)."""

    accounts: AccountStates = field(default_factory=AccountStates)
    unrecorded: list[Sent] = field(default_factory=list)
    in_flight: bool = False


@dataclass
class Prepared:
    """A claim ready for the gate: its account state and, unless `problem` says why the
    content could not be made (then the gate holds it), the MIME to send."""

    state: AccountState
    raw: bytes | None
    subject: str
    problem: str | None = None
    warning: str | None = None  # goes on the sent entry of its timeline


# A batch sends from a few addresses, often to repeated ones: parse each once.
_parsed = lru_cache(maxsize=4096)(parseaddr)


def _address_of(header: str) -> str:
    """The address in a To header, as contacts store it (lower case)."""
    return _parsed(header)[1].strip().lower()


def _list_id(message, sender: str) -> str | None:
    """The RFC 2919 list a campaign's or a rule's mail belongs to, under the sender's
    domain (one per campaign or rule, so that a recipient's filters can tell them apart)."""
    domain = sender.rpartition("@")[2] or "mailrelease.invalid"
    if message.campaign_id is not None:
        return f"campaign-{message.campaign_id}.team-{message.team_id}.{domain}"
    if message.rule_id is not None:
        return f"rule-{message.rule_id}.team-{message.team_id}.{domain}"
    return None


class Releaser:
    """Sends claimed messages through the sender's Gmail account."""

    def __init__(self, db: Database, settings: Settings, gmail: Gmail, content: ContentFetcher,
                 links: Links, *, clock=utcnow, stop: threading.Event | None = None):
        self.db = db
        self.settings = settings
        self.gmail = gmail
        self.cipher = gmail.cipher
        self.content = content
        self.links = links
        self.files = FileReader()
        self.clock = clock
        self.stop = stop or threading.Event()
        self._rng = random.Random()
        # What a database outage kept from being written: claims to give back (see
        # _crashed) and sends Gmail accepted (see flush). `retry_pending` writes them.
        self.pending: deque[tuple[queue.Claim, str]] = deque()
        self.unrecorded: list[Sent] = []
        self._pending_lock = threading.Lock()
        # How many sends all workers together can make for one account between two reads
        # of its count; with pacing off, nothing bounds that, so the count is always read.
        rate = settings.sends_per_second
        self._count_margin = (math.ceil(rate * ACCOUNT_REFRESH_SECONDS) + 1 if rate > 0
                              else 10 ** 9)

    def load_account(self, account_id: int) -> AccountState:
        """The account's row, its decrypted grant and how many it sent in the last 24 h."""
        with self.db.core_read() as conn:
            row = conn.execute(_ACCOUNT, {"b_account": account_id}).one()
            count = queue.sent_since(conn, account_id, self.clock() - DAY)
        return AccountState(row, self.cipher.decrypt(row.token_blob), row.token_blob, count,
                            time.monotonic())

    def _account(self, account_id: int, batch: Batch) -> AccountState:
        state = batch.accounts.get(account_id)
        # An account that was not connected is read again: its owner may have signed in.
        if (state is None or state.row.status != "connected"
                or time.monotonic() - state.loaded > ACCOUNT_REFRESH_SECONDS):
            state = self.load_account(account_id)
            batch.accounts.put(account_id, state)
        return state

    def release(self, claim: queue.Claim, batch: Batch | None = None) -> str:
        """Do everything for one claim; returns the status it ended in.

        Within a `batch`, the record of a send is written in the batch's next write
        transaction (its next claim's first one) instead of one of its own; the caller
        calls `flush(batch)` at the end. Until then the message stays `sending` under its
        lease, so a crash in between is reconciled (found by its Message-ID), never sent
        twice. Without a batch the claim is released and recorded on its own.
        """
        alone = batch is None
        batch = batch or Batch()
        batch.in_flight = False
        try:
            outcome = self._release(claim, batch)
        except Exception as exc:  # noqa: BLE001 - every error has an exit (see _crashed)
            outcome = self._crashed(claim, exc, batch)
        RELEASES.labels(outcome).inc()
        if alone:
            self.flush(batch)
        return outcome

    def _release(self, claim: queue.Claim, batch: Batch) -> str:
        """prepare → gate → send (which records): each step returns the final status when
        the claim ends there."""
        prepared = self._prepare(claim, batch)
        if isinstance(prepared, str):
            return prepared
        stopped = self._gate(claim, prepared, batch)
        if stopped is not None:
            return stopped
        return self._send(claim, prepared, batch)

    def _crashed(self, claim: queue.Claim, exc: Exception, batch: Batch) -> str:
        """Record an unexpected error on the message: never leave it `sending`.

        A database error before the Gmail request gives the claim back at once (not
        an attempt); if the database is down, the give-back waits in `pending` and is
        retried by the worker's next pass, so releases resume within seconds of its
        return. Any other error is written on the message's timeline with its class and
        text and retried with backoff, up to `max_attempts` crashes, then `failed`. Only
        an error during the Gmail request itself leaves the send in doubt (reconciled).
        """
        in_flight = batch.in_flight
        kind = type(exc).__name__
        CRASHES.labels(kind).inc()
        log.error("action=release_crashed message_id=%s class=%s in_flight=%s error=%s",
                  claim.message_id, kind, in_flight, " ".join(str(exc).split())[:500],
                  exc_info=not isinstance(exc, (SQLAlchemyError, UnsendableAddress)))
        # The database going away (or SQLite busy) is not this message's fault: give the
        # claim back without counting an attempt. Any other database error is the row's
        # and counts like any crash, so that it cannot come back forever.
        if isinstance(exc, (OperationalError, InterfaceError)) and not in_flight:
            return self._give_back_later(claim, batch, f"database error before sending "
                                                       f"({kind}); released its claim")
        text = " ".join(f"{kind}: {exc}".split())[:2000]
        try:
            with self._write(batch) as conn:
                queue.record_event(conn, claim.message_id, "crashed", self.clock(),
                                   {"class": kind, "error": text, "in_flight": in_flight,
                                    "attempt": claim.attempts})
                crashes = queue.crash_count(conn, claim.message_id)
                now = self.clock()
                if isinstance(exc, UnsendableAddress) or crashes >= self.settings.max_attempts:
                    why = (text if isinstance(exc, UnsendableAddress) else
                           f"failed after {crashes} attempts; last error: {text}")
                    queue.mark_failed(conn, claim, now, why)
                    return "failed"
                delay = backoff(crashes, None, self._rng, self.settings.retry_base_seconds)
                queue.mark_retry(conn, claim, now, now + dt.timedelta(seconds=delay), text,
                                 needs_reconcile=in_flight or claim.needs_reconcile)
                return "retry_wait"
        except SQLAlchemyError:
            if in_flight:
                return "sending"  # the lease expires and the message is reconciled
            return self._give_back_later(claim, batch, f"{kind} before sending, and the "
                                                       "database could not record it; "
                                                       "released its claim")

    def _give_back_later(self, claim: queue.Claim, batch: Batch, reason: str) -> str:
        """Give a never-sent claim back now, or as soon as the database answers again."""
        try:
            with self._write(batch) as conn:
                queue.release_claim(conn, claim, self.clock(), reason)
        except SQLAlchemyError:
            with self._pending_lock:
                self.pending.append((claim, reason))
        return "scheduled"

    def retry_pending(self) -> int:
        """Record the sends and give back the claims a database outage kept (a worker's
        pass calls this first), well before their leases could expire and make the sends a
        reconcile. Returns how many claims went back; stops at the first failure (the
        database is still down)."""
        with self._pending_lock:
            sends, self.unrecorded = self.unrecorded, []
        if sends:
            try:
                with self._write(Batch(unrecorded=sends)):
                    pass
            except SQLAlchemyError:
                with self._pending_lock:
                    self.unrecorded[:0] = sends  # still down: the next pass tries again
                return 0
        done = 0
        while True:
            with self._pending_lock:
                if not self.pending:
                    return done
                claim, reason = self.pending[0]
            try:
                with self.db.core_write() as conn:
                    queue.release_claim(conn, claim, self.clock(), reason)
            except SQLAlchemyError:
                return done  # still down: the next pass tries again
            with self._pending_lock:
                self.pending.popleft()
            done += 1

    @contextmanager
    def _write(self, batch: Batch | None):
        """A write transaction that first records the batch's sends not recorded yet."""
        pending = batch.unrecorded if batch is not None else []
        count = len(pending)
        with self.db.core_write() as conn:
            for sent in pending[:count]:
                self._record(conn, sent)
            yield conn
        del pending[:count]  # only once committed: after a rollback they are written later

    def flush(self, batch: Batch) -> None:
        """Record the batch's sends not recorded yet (the end of a batch). If the database
        cannot take them now, they wait in `unrecorded` for the worker's next pass
        (`retry_pending`), and the error is raised."""
        if not batch.unrecorded:
            return
        try:
            with self._write(batch):
                pass
        except SQLAlchemyError:
            with self._pending_lock:
                self.unrecorded.extend(batch.unrecorded)
            batch.unrecorded.clear()
            raise

    @staticmethod
    def _record(conn, sent: Sent) -> None:
        """record: the row becomes `sent`, if the claim is still the one that sent it."""
        claim, result = sent.claim, sent.result
        moved = queue.mark_sent(conn, claim, sent.sent_at, result["id"],
                                result.get("threadId", ""), sent.subject,
                                warning=sent.warning)
        log.info("action=sent message_id=%s account=%s gmail_id=%s attempt=%d lease_kept=%s",
                 claim.message_id, claim.account_id, result["id"], claim.attempts, moved)

    def _prepare(self, claim: queue.Claim, batch: Batch) -> Prepared | str:
        """prepare: the account may send now, a follow-up is still wanted, and the MIME is
        built with send-time content; or the status the claim ended in."""
        message = claim.row
        state = self._account(claim.account_id, batch)
        stopped = (self._account_stops(claim, state, batch)
                   or self._follow_up_stops(claim, state, batch))
        if stopped is not None:
            return stopped
        data = {**message.data, **self._links_for(message)}
        if message.sources:
            # Before the pacing slot is taken: a slow source costs at most its timeout.
            try:
                data.update(self.content.fetch(message.sources, message.data,
                                               message.team_id)[0])
            except ContentUnavailable as exc:
                return self._hold(claim, batch, "missing_data", str(exc))
        try:
            parts = render_message(message.subject_tpl, message.html_tpl, message.text_tpl,
                                   data, amp=message.amp_tpl)
        except RenderError as exc:
            # The template fails with this recipient's data: resending cannot help.
            with self._write(batch) as conn:
                queue.mark_failed(conn, claim, self.clock(), f"the template fails at "
                                  f"release: {exc}")
            return "failed"
        except (MissingData, TemplateError) as exc:
            # Held by the gate, unless one of its checks stops the message first.
            return Prepared(state, None, "", problem=str(exc))
        sender = _address_of(message.from_addr)
        decorated = decorate(
            parts.html, parts.text, message_id=message.id, sender=sender,
            links=self.links, track=message.tracking and not message.transactional,
            unsubscribe=not message.transactional,
            unsubscribe_url=data.get("unsubscribe_url"),
            list_id=None if message.transactional else _list_id(message, sender),
            automatic=message.rule_id is not None)
        amp_part, warnings = self._amp_part(message, parts.amp, data)
        try:
            files = self._files(message, data)
        except AttachmentProblem as exc:
            return Prepared(state, None, "", problem=str(exc))
        raw = build_message(
            sender=_parsed(message.from_addr), to=_parsed(message.to_addr),
            subject=parts.subject, html=decorated.html, text=decorated.text,
            amp=amp_part, message_id=message.rfc822_id, date=self.clock(),
            in_reply_to=message.in_reply_to, references=message.thread_references,
            extra_headers=decorated.headers,
            reply_to=_parsed(message.reply_to) if message.reply_to else None,
            cc=[_parsed(a) for a in message.cc or ()],
            bcc=[_parsed(a) for a in message.bcc or ()],
            attachments=files,
        )
        if len(raw) > MAX_MESSAGE_BYTES:
            return Prepared(state, None, "", problem=f"the message is {len(raw) / 2**20:.1f} "
                            f"MB with its files, above the 35 MB Gmail takes")
        size = len(decorated.html.encode())
        if size > CLIP_BYTES:
            warnings.append(f"{size / 1000:.0f} KB of HTML: Gmail shows it clipped (the "
                            f"unsubscribe link and the open pixel were put first)")
        return Prepared(state, raw, parts.subject, warning="; ".join(warnings) or None)

    def _files(self, message, data: dict) -> list:
        """The message's attachments and inline images, read or fetched now."""
        if not message.attachments:
            return []
        with self.db.core_read() as conn:
            return resolve(conn, message.attachments, data, message.team_id, self.files,
                           self.content)

    def _amp_part(self, message, amp: str | None, data: dict) -> tuple[str | None, list[str]]:
        """The AMP part as rendered for this recipient, with the unsubscribe link and
        tracking, checked as at save; one Gmail would refuse (an http: image from the data,
        a document past 200 KB) is left out, and the warning says why."""
        if not amp:
            return None, []
        amp = decorate_amp(amp, message_id=message.id, links=self.links,
                           track=message.tracking and not message.transactional,
                           unsubscribe_url=None if message.transactional
                           else data.get("unsubscribe_url"))
        # On a development deployment (a plain-http public URL, refused by Gmail's AMP and
        # warned about at start) our own links are not what is being checked here.
        own = self.links.public_url
        problems = find_problems(amp if own.startswith("https://")
                                 else amp.replace(own, "https://mailrelease.invalid"))
        if not problems:
            return amp, []
        listed = "; ".join(f"line {line}: {text}" for line, text in problems[:3])
        return None, [f"the AMP part was left out, as Gmail would refuse it: {listed}"]

    def _account_stops(self, claim: queue.Claim, state: AccountState,
                       batch: Batch) -> str | None:
        """Held when nothing can send it: no OAuth client, the account needs reconnecting,
        or it is later than the lateness limit."""
        message, account, now = claim.row, state.row, self.clock()
        if self.gmail.client_problem() is not None:
            return self._hold(claim, batch, "no_client",
                              "no OAuth client is configured (credentials.json)")
        if account.status != "connected":
            return self._hold(claim, batch, "reconnect", f"{account.email} needs "
                              f"reconnecting: sign in with Google again to release this "
                              f"message")
        lateness = (now - message.release_at).total_seconds()
        if not claim.needs_reconcile and lateness > self.settings.max_lateness_seconds:
            return self._hold(claim, batch, "too_late", f"was due "
                              f"{message.release_at.isoformat()} but nothing could send it "
                              f"until {now.isoformat()}; send now or cancel")
        return None

    def _follow_up_stops(self, claim: queue.Claim, state: AccountState,
                         batch: Batch) -> str | None:
        """A follow-up waits for its previous step, or is skipped after a reply or click;
        one that stops on a reply first looks at the thread (the last check)."""
        message = claim.row
        if message.follows_id:
            verdict, before = self._follow_up(message)
        elif message.reply_thread_id and message.follow_unless in STOPS_ON_MAIL:
            # A follow-up in a Gmail thread we did not start (queued from the add-on):
            # it goes unless someone answered there since it was queued.
            verdict, before = None, ThreadSince(message.reply_thread_id, message.created_at)
        else:
            return None
        if verdict is None and message.follow_unless in STOPS_ON_MAIL:
            try:
                verdict = self._last_check(state, batch, message, before)
            except (TransientGmailError, ReconnectNeeded) as exc:
                # Gmail is down or the grant is gone: the send would fail the same way.
                batch.accounts.forget(state.row.id)
                return self._on_error(claim, batch, state, exc)
            except GmailError as exc:
                # The thread cannot be read (deleted by its owner: 404): as without read
                # access, the step goes on what the sync has recorded.
                log.info("action=last_check_unavailable message_id=%s status=%s",
                         message.id, exc.status)
        if verdict is None:
            return None
        now = self.clock()
        with self._write(batch) as conn:
            if verdict[0] == "wait":
                queue.mark_retry(conn, claim, now, now + verdict[2], verdict[1],
                                 claim.needs_reconcile)
                return "retry_wait"
            if verdict[0] == "replied" and message.follows_id and not conn.execute(
                    select(MessageEvent.id).where(
                    MessageEvent.message_id == message.follows_id,
                    MessageEvent.type == "replied").limit(1)).first():
                queue.record_event(conn, message.follows_id, "replied", now,
                                   {"from": verdict[2], "found_by": "last check"})
            queue.mark_skipped(conn, claim, now, verdict[1])
        return "cancelled"

    def _spend_quota(self, account_id: int, units: int) -> None:
        """Take `units` of Gmail's per-user quota from the account's pacing slot (a send
        is 100 units, paced at MAILRELEASE_SENDS_PER_SECOND), waiting for it as a send
        would: a look at a thread is counted in the same budget as the sends."""
        rate = self.settings.sends_per_second
        if rate <= 0:
            return
        with self.db.core_write() as conn:
            now = self.clock()
            slot = queue.reserve_send_slot(conn, account_id, now, units / SEND_UNITS / rate)
        wait = (slot - now).total_seconds()
        if wait > 0:
            self.stop.wait(wait)

    def _last_check(self, state: AccountState, batch: Batch, message, before):
        """("replied", why, who) when someone answered in the previous step's thread since
        it was sent; ("skip", why) when, under the person or domain rule, they (or their
        company) wrote to the mailbox in another thread; else None (also when there is
        nothing to look at: no read access, no thread)."""
        account = state.row
        if not before.gmail_thread_id or before.sent_at is None or not can_read(
                account.scopes.split()):
            LAST_CHECKS.labels("skipped").inc()
            return None
        self._spend_quota(account.id, LAST_CHECK_UNITS)
        service = self.gmail.pooled(account.id, state.token_info)
        own = own_addresses(account) | {_address_of(message.from_addr)}
        try:
            who = reply_in_thread(service, before.gmail_thread_id, before.sent_at, own)
            elsewhere = None
            if who is None and message.follow_unless in ("person", "domain"):
                recipient = _address_of(message.to_addr)
                wide = (company_domain(recipient) if message.follow_unless == "domain"
                        else None)
                elsewhere = wrote_since(service, wide or recipient, before.sent_at, own)
        finally:
            self._persist_refresh(state, batch, service)
        LAST_CHECKS.labels("found" if who or elsewhere else "clear").inc()
        if who is not None:
            return ("replied", f"skipped: {who} replied to the previous step (found by the "
                               f"last look at the thread before sending)", who)
        if elsewhere is not None:
            return ("skip", f"skipped: {elsewhere} wrote to us since the previous step "
                            f"(found by the last look at the mailbox before sending)")
        return None

    def _send(self, claim: queue.Claim, prepared: Prepared, batch: Batch) -> str:
        """send: reconcile an earlier attempt, then Gmail's messages.send; a send Gmail
        accepted is recorded in the batch's next write transaction."""
        message, state = claim.row, prepared.state
        account = state.row
        assert prepared.raw is not None  # the gate holds a claim with a problem
        service = self.gmail.pooled(account.id, state.token_info)
        batch.in_flight = True  # an unexpected error from here on may follow a send
        try:
            if claim.needs_reconcile:
                outcome = self._reconcile(claim, batch, service, message, account,
                                          prepared.subject)
                if outcome is not None:
                    return outcome
            result = service.send(prepared.raw, thread_id=message.reply_thread_id)
        except GmailError as exc:
            batch.accounts.forget(account.id)  # the error may have changed the account
            return self._on_error(claim, batch, state, exc)
        finally:
            self._persist_refresh(state, batch, service)
        state.sent_today += 1
        batch.in_flight = False
        sent_at = self.clock()
        batch.unrecorded.append(Sent(claim, sent_at, result, prepared.subject,
                                     prepared.warning))
        LAG.observe(max(0.0, (sent_at - message.release_at).total_seconds()))
        if message.event_at is not None and message.release_at <= message.event_at:
            EVENT_TO_SEND.observe((sent_at - message.event_at).total_seconds())
        return "sent"

    def _links_for(self, message) -> dict:
        """The signed links a template may use (content.links.message_links)."""
        return message_links(self.links, message.id, message.data, message.sources,
                             message.transactional)

    def _follow_up(self, message) -> tuple:
        """(verdict, the previous step's row): verdict None to send this follow-up,
        ("skip", why) or ("wait", why, recheck) otherwise."""
        with self.db.core_read() as conn:
            before = conn.execute(select(Message.status, Message.clicks,
                                         Message.gmail_thread_id, Message.sent_at).where(
                Message.id == message.follows_id)).first()
            replied = conn.execute(select(MessageEvent.id).where(
                MessageEvent.message_id == message.follows_id,
                MessageEvent.type == "replied").limit(1)).first() is not None
        if before is None or before.status in ("cancelled", "failed"):
            return ("skip", "skipped: the previous step was not sent"), before
        if before.status != "sent":
            # A previous step on its way goes soon; a held one waits for a person.
            soon = before.status in ("scheduled", "sending", "retry_wait")
            return ("wait", f"waiting for the previous step ({before.status})",
                    FOLLOW_UP_SOON if soon else FOLLOW_UP_RECHECK), before
        if replied:
            return ("skip", "skipped: the recipient replied to the previous step"), before
        if message.follow_unless == "click" and before.clicks:
            return ("skip", "skipped: the recipient clicked in the previous step"), before
        return None, before

    @staticmethod
    def _suppressed(conn, team_id: int, address: str) -> str | None:
        """Why the recipient must not get this (unsubscribed, bounced), or None."""
        found = subscription_of(conn, team_id, address)
        if found is None or found[0] == "subscribed":
            return None
        return f"not sent: {address} is {found[0]} ({found[1] or ''})"

    def _cap_to_check(self, state: AccountState, now: dt.datetime):
        """What the send's last check counts: (cap, since) near the account's daily cap,
        None far from it, False when Gmail's own daily limit stands."""
        account = state.row
        if account.limited_until and account.limited_until > now:
            return False
        cap = accounts.daily_cap(account, self.settings.daily_cap, now)
        # Near the cap, count again: other workers may send for this account too. Far from
        # it they cannot close the gap before the next refresh, as pacing is shared.
        return (cap, now - DAY) if state.sent_today + self._count_margin >= cap else None

    def _daily_limit(self, conn, state: AccountState, now: dt.datetime):
        """(until, reason) when the account may not send now because of a daily limit."""
        # Before holding, the account as it is now: its cap or warm-up may have changed
        # since this thread read it.
        state.row = account = conn.execute(_ACCOUNT, {"b_account": state.row.id}).one()
        check = self._cap_to_check(state, now)
        if check is False:
            resumes = account.limited_until.isoformat()
            return account.limited_until, (f"Gmail's daily sending limit for {account.email} "
                                           f"is reached; resumes {resumes}")
        if check is None:
            return None
        cap = check[0]
        state.sent_today = queue.sent_since(conn, account.id, now - DAY)
        if state.sent_today < cap:
            return None
        until = queue.window_reopens(conn, account.id, now, DAY, cap) or now
        which = ("warm-up ceiling for today" if guard.warmup_ceiling(account, now) == cap
                 else "daily cap")
        return until, (f"{which} reached: {state.sent_today} of {cap} sent from "
                       f"{account.email} in the last 24 h; resumes {until.isoformat()}")

    def _gate(self, claim: queue.Claim, prepared: Prepared, batch: Batch,
              again: bool = True) -> str | None:
        """gate: the last checks, then the account's pacing slot and a lease that covers
        the send.

        The common case is one conditional UPDATE in one write transaction: it renews the
        lease only if the claim is still this worker's (if the lease lapsed and another
        worker took the message over, this one must not send it too), the recipient has
        not unsubscribed or bounced, and the account is under its daily cap. Only when it
        matches nothing are the checks made one by one to find which one stopped the send.
        The renewed lease outlives the Gmail timeout, so nobody can take over a send in
        flight. None means: send now; otherwise the status the claim ended in.
        """
        message, state, problem = claim.row, prepared.state, prepared.problem
        rate = self.settings.sends_per_second
        cover = dt.timedelta(seconds=max(self.settings.lease_seconds,
                                         2 * self.settings.gmail_timeout_seconds + 5))
        recipient = None if message.transactional else _address_of(message.to_addr)
        wait, stale = 0.0, False
        with self._write(batch) as conn:
            now = self.clock()
            cap = self._cap_to_check(state, now)
            clear = problem is None and cap is not False
            if clear and rate > 0:
                # The slot first, so that the renewal knows whether the send follows at
                # once (then it marks the message as possibly sent) or after a wait.
                slot = queue.reserve_send_slot(conn, state.row.id, now, 1.0 / rate)
                wait = (slot - now).total_seconds()
            clear = clear and queue.clear_to_send(conn, claim, now + cover, recipient, cap,
                                                  in_flight=wait <= 0)
            if not clear:
                suppressed = recipient and self._suppressed(conn, message.team_id, recipient)
                if suppressed:
                    queue.mark_suppressed(conn, claim, now, suppressed)
                    return "cancelled"
                # A receipt (no recipient check) is never held for a campaign's bounces.
                paused = recipient and guard.paused_reason(conn, message)
                if paused:
                    return self._held(conn, claim, "paused", paused)
                limited = self._daily_limit(conn, state, now)
                if limited is not None:
                    return self._held(conn, claim, "daily_limit", limited[1],
                                      until=limited[0])
                if problem is not None:
                    return self._held(conn, claim, "missing_data", problem)
                # The cap this thread knew was stale (its warm-up or cap changed): the
                # checks again, with the account as it is now.
                stale = cap is not False and self._cap_to_check(state, now) != cap
        if not clear and stale and again:
            return self._gate(claim, prepared, batch, again=False)
        if clear and wait > 0:
            if self.stop.wait(wait):
                return self.give_back(claim, batch)
            with self._write(batch) as conn:
                clear = queue.extend_lease(conn, claim, self.clock() + cover, in_flight=True)
        elif self.stop.is_set():
            return self.give_back(claim, batch)
        if not clear:
            log.warning("action=lease_lost message_id=%s", claim.message_id)
            return self.give_back(claim, batch)
        return None

    def _reconcile(self, claim, batch: Batch, service, message, account,
                   subject) -> str | None:
        """A previous attempt may have left: look for it by Message-ID before resending."""
        if not can_read(account.scopes.split()):
            return self._hold(claim, batch, "delivery_unknown",
                              "delivery unknown: an earlier attempt may have been sent and this "
                              "account did not grant read access to check; send now to send "
                              "it again, or cancel", needs_reconcile=True)
        found = service.find_by_rfc822_id(message.rfc822_id)
        if not found:
            log.info("action=reconcile message_id=%s found=0", message.id)
            return None
        with self._write(batch) as session:
            queue.mark_sent(session, claim, self.clock(), found[0]["id"],
                            found[0].get("threadId", ""), subject, reconciled=True)
        log.info("action=reconcile message_id=%s found=1 gmail_id=%s", message.id,
                 found[0]["id"])
        return "sent"

    def _on_error(self, claim, batch: Batch, state: AccountState, exc: GmailError) -> str:
        account = state.row
        now = self.clock()
        reason = " ".join(f"Gmail {exc.status or ''} {exc.reason}: {exc}".split())
        GMAIL_ERRORS.labels(type(exc).__name__).inc()
        log.warning("action=send_error message_id=%s account=%s class=%s status=%s reason=%s",
                    claim.message_id, account.id, type(exc).__name__, exc.status, exc.reason)
        if isinstance(exc, ReconnectNeeded):
            with self._write(batch) as session:
                marked = accounts.mark_reconnect_needed(session, account.id, str(exc), now,
                                                        grant=state.token_blob)
                if not marked:
                    # Its owner signed in again since this grant was read: try the new one.
                    queue.mark_retry(session, claim, now, now, f"{reason}; the account was "
                                     f"reconnected meanwhile", claim.needs_reconcile)
                    return "retry_wait"
            return self._hold(claim, batch, "reconnect",
                              f"{account.email} needs reconnecting: {exc}")
        if isinstance(exc, DailyLimitReached):
            until = exc.retry_at if exc.retry_at and exc.retry_at > now else now + DAY / 24
            with self._write(batch) as session:
                accounts.mark_daily_limited(session, account.id, until, now)
            return self._hold(claim, batch, "daily_limit", f"Gmail's daily sending limit is "
                              f"reached for {account.email}: {exc}", until=until)
        if isinstance(exc, TransientGmailError):
            ambiguous = isinstance(exc, AmbiguousSendError)
            delay = backoff(claim.attempts, exc.retry_after, self._rng,
                            self.settings.retry_base_seconds)
            with self._write(batch) as session:
                queue.mark_retry(session, claim, now, now + dt.timedelta(seconds=delay),
                                 reason, needs_reconcile=ambiguous or claim.needs_reconcile)
            return "retry_wait"
        assert isinstance(exc, PermanentGmailError), exc
        with self._write(batch) as session:
            queue.mark_failed(session, claim, now, reason)
        return "failed"

    def _hold(self, claim, batch: Batch | None, kind: str, reason: str,
              needs_reconcile: bool = False, until: dt.datetime | None = None) -> str:
        with self._write(batch) as conn:
            return self._held(conn, claim, kind, reason, needs_reconcile, until)

    def _held(self, conn, claim, kind: str, reason: str, needs_reconcile: bool = False,
              until: dt.datetime | None = None) -> str:
        """Hold the claim within the caller's transaction."""
        queue.mark_held(conn, claim, self.clock(), kind, reason, needs_reconcile, until)
        HOLDS.labels(kind).inc()
        log.info("action=held message_id=%s kind=%s", claim.message_id, kind)
        return "held"

    def give_back(self, claim, batch: Batch | None = None) -> str:
        """Return an unstarted claim to the queue (stopping, or a no-op if the lease was lost)."""
        with self._write(batch) as session:
            queue.release_claim(session, claim, self.clock())
        return "scheduled"

    def _persist_refresh(self, state: AccountState, batch: Batch, service) -> None:
        info = ServicePool.refreshed_info(service, state.token_info)
        if info is None:
            return
        with self._write(batch) as session:
            state.token_blob = self.gmail.store_refreshed(session, state.row.id, info,
                                                          self.clock())
        state.token_info.update(info)
        log.info("action=token_refreshed account=%s", state.row.id)
