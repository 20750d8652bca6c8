"""Reading each sending mailbox for what came back: bounces, replies, unsubscribe mails.

Every MAILRELEASE_SYNC_SECONDS a worker takes each connected account that granted read
access (one worker per account per round: the round is claimed in the database), asks
Gmail's history API what was added since last time (a search when that history is too
old), and records on the sent message:
  bounced        a delivery status notification naming it (hard bounces suppress the address)
  replied        a message from the recipient in its thread or naming it in In-Reply-To
  auto_replied   the same but automatic (scheduler/engine/threads.py): not a reply
  unsubscribed   a mail to the account with the subject "unsubscribe" (List-Unsubscribe mailto)
"""
from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import logging
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.utils import parseaddr

from prometheus_client import Counter
from sqlalchemy import and_, false, func, or_, select, true, update

from gmail_client.api import GmailService
from gmail_client.errors import GmailError, HistoryExpired
from gmail_client.oauth import can_read
from scheduler.audience import guard, teams
from scheduler.audience.suppression import UNSUBSCRIBES, suppress
from scheduler.delivery import replies
from scheduler.engine import threads
from scheduler.engine.connections import Gmail
from scheduler.engine.threads import is_automatic
from scheduler.settings import Settings
from scheduler.store import queue
from scheduler.store.db import Database, rowcount, utcnow
from scheduler.store.models import GmailAccount, Message, MessageEvent

log = logging.getLogger("mailrelease.sync")

BOUNCES = Counter("mailrelease_bounces", "Bounces read back from mailboxes", ["kind"])
REPLIES = Counter("mailrelease_replies", "Replies read back from mailboxes", ["kind"])

_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_DAEMONS = ("mailer-daemon@", "postmaster@")
# How long a worker may take to read a mailbox before another may (a crash frees it).
SYNC_LEASE = dt.timedelta(seconds=120)


@dataclass
class Incoming:
    """What one received message means for the messages we sent."""

    kind: str | None  # bounce, reply, auto_reply, unsubscribe, or None (unrelated)
    refs: set[str] = field(default_factory=set)  # Message-IDs it names
    thread_id: str | None = None
    sender: str = ""
    status: str | None = None  # a bounce's enhanced status code (5.1.1)
    diagnostic: str | None = None
    arrived_at: dt.datetime | None = None  # Gmail's internalDate
    text: str = ""  # an automatic answer's subject and text (a return date may be there)


def _refs(value: str | None) -> set[str]:
    return set(_MESSAGE_ID.findall(value or ""))


def classify(raw: bytes, thread_id: str | None = None) -> Incoming:
    """Read one received message (RFC 5322 bytes)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    sender = parseaddr(msg.get("From", ""))[1].lower()
    subject = (msg.get("Subject") or "").strip().lower()
    refs = _refs(msg.get("In-Reply-To")) | _refs(msg.get("References"))
    if msg.get_content_type() == "multipart/report" or sender.startswith(_DAEMONS):
        return _bounce(msg, sender, refs, thread_id)
    if subject == "unsubscribe":
        return Incoming("unsubscribe", refs, thread_id, sender)
    auto = is_automatic({name.lower(): _decoded(msg.get(name)) for name in threads.HEADERS})
    if not auto:
        return Incoming("reply", refs, thread_id, sender)
    return Incoming("auto_reply", refs, thread_id, sender,
                    text=f"{_decoded(msg.get('Subject'))}\n{_plain_text(msg)}"[:5000])


def _plain_text(msg) -> str:
    """The first text/plain part's text, or ""."""
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return ""


def _decoded(value) -> str:
    """A header as text (its RFC 2047 encoded-words decoded, as Gmail's API gives it)."""
    if not value:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError):
        return str(value)


def _bounce(msg, sender: str, refs: set[str], thread_id: str | None) -> Incoming:
    found = Incoming("bounce", set(refs), thread_id, sender)
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for block in part.get_payload():
                status = block.get("Status")
                if status and not found.status:
                    found.status = status.strip().split()[0]
                diagnostic = block.get("Diagnostic-Code")
                if diagnostic and not found.diagnostic:
                    found.diagnostic = " ".join(diagnostic.split())[:300]
        elif ctype in ("message/rfc822", "text/rfc822-headers"):
            original = part.get_payload()
            if isinstance(original, list):
                original = original[0]
            if isinstance(original, str):
                original = email.message_from_string(original, policy=email.policy.compat32)
            found.refs |= _refs(original.get("Message-ID"))
        elif ctype == "text/plain" and not found.status:
            # Some servers write only prose: take the first status code and Message-ID.
            text = part.get_payload(decode=True) or b""
            body = text.decode("utf-8", "replace")
            if match := _STATUS.search(body):
                found.status = match.group(1)
            found.refs |= _refs(body) if "message-id" in body.lower() else set()
    return found


def stop_follow_ups(s, message: Message, why: str, now: dt.datetime) -> int:
    """Cancel the steps still to come after `message` that stop on a reply (and the
    steps after those), saying why on their timelines; returns how many. A step that
    stops only on a click goes on."""
    steps = s.scalars(select(Message.id).where(
        Message.follows_id == message.id, Message.status.in_(queue.OPEN_STATUSES),
        Message.follow_unless.in_(threads.STOPS_ON_MAIL))).all()
    return _cancel_steps(s, [(step_id, message.team_id) for step_id in steps],
                         f"skipped: {why}", now)


MAX_POSTPONE = dt.timedelta(days=30)
_LANGUAGES = ["en", "de", "fr", "es"]


def return_date(text: str, now: dt.datetime) -> dt.datetime | None:
    """The date an out-of-office says its writer is back: the latest future date it names
    within a year (dateparser, in English, German, French and Spanish), at most 30 days
    on; None when it names none."""
    import dateparser.search  # heavy, and needed only for out-of-office answers

    found = dateparser.search.search_dates(
        text, languages=_LANGUAGES,
        settings={"PREFER_DATES_FROM": "future", "RETURN_AS_TIMEZONE_AWARE": True,
                  "TIMEZONE": "UTC", "RELATIVE_BASE": now.replace(tzinfo=None)}) or []
    dates = [when.astimezone(dt.UTC) for _, when in found
             if now < when.astimezone(dt.UTC) <= now + dt.timedelta(days=366)]
    return min(max(dates), now + MAX_POSTPONE) if dates else None


def postpone_follow_ups(s, message: Message, incoming: Incoming, now: dt.datetime) -> int:
    """An out-of-office answered `message`: the next steps that wait for one ("postpone")
    move to the return date it names, if later than their time; returns how many."""
    steps = s.execute(select(Message.id, Message.release_at).where(
        Message.follows_id == message.id, Message.follow_postpone.is_(True),
        Message.status.in_(queue.OPEN_STATUSES))).all()
    back = return_date(incoming.text, now) if steps else None
    if back is None:
        return 0
    moved = 0
    for step in steps:
        if step.release_at is not None and step.release_at >= back:
            continue
        if queue.transition(s, step.id, message.team_id, "schedule", now,
                            {"postponed": f"{incoming.sender} is away until "
                                          f"{back:%Y-%m-%d} (out of office)",
                             "release_at": back.isoformat()},
                            where=(Message.status == "scheduled",), release_at=back):
            moved += 1
    return moved


def stop_on_mail_from(s, account: GmailAccount, incoming: Incoming, now: dt.datetime) -> int:
    """Someone wrote to the mailbox, in any thread: stop the steps still to come that stop
    when that person writes ("person"), or anyone at their company ("domain")."""
    sender, domain = incoming.sender, threads.company_domain(incoming.sender)
    addr = func.lower(Message.to_addr)
    person = or_(addr == sender, addr.like(f"%<{sender}>"))
    company = (or_(addr.like(f"%@{domain}"), addr.like(f"%@{domain}>")) if domain
               else person)
    since = incoming.arrived_at or now
    previous = select(Message.id).where(Message.status == "sent", Message.sent_at < since)
    steps = s.execute(select(Message.id, Message.follow_unless, Message.team_id).where(
        Message.account_id == account.id, Message.status.in_(queue.OPEN_STATUSES),
        Message.follows_id.in_(previous.scalar_subquery()),
        or_(and_(Message.follow_unless == "person", person),
            and_(Message.follow_unless == "domain", company)))).all()
    stopped = 0
    for step in steps:
        who = "someone at " + domain if step.follow_unless == "domain" and domain else sender
        why = f"skipped: {who} wrote to us ({sender}) since the previous step"
        stopped += _cancel_steps(s, [(step.id, step.team_id)], why, now)
    return stopped


def _cancel_steps(s, steps: list[tuple[str, int]], why: str, now: dt.datetime) -> int:
    """Cancel these steps, (id, team id), and every open step after each of them,
    saying why on their timelines; returns how many were cancelled."""
    stopped, frontier = 0, list(steps)
    while frontier:
        cancelled = [(step_id, team_id) for step_id, team_id in frontier
                     if queue.transition(s, step_id, team_id, "cancel", now,
                                         {"reason": why}, error=why)]
        stopped += len(cancelled)
        frontier = []
        for step_id, team_id in cancelled:
            frontier += [(after, team_id) for after in s.scalars(select(Message.id).where(
                Message.follows_id == step_id, Message.status.in_(queue.OPEN_STATUSES)))]
    return stopped


def _hard(status: str | None) -> bool:
    return bool(status) and str(status).startswith("5")


class MailboxSync:
    """One round over every account that may be read."""

    def __init__(self, db: Database, settings: Settings, gmail: Gmail, *, clock=utcnow):
        self.db = db
        self.settings = settings
        self.gmail = gmail
        self.cipher = gmail.cipher
        self.clock = clock

    def run(self) -> int:
        """Sync every due account; returns how many messages were read."""
        if self.gmail.client_problem() is not None:
            return 0
        with self.db.read() as s:
            ids = s.scalars(select(GmailAccount.id).where(GmailAccount.status == "connected")
                            ).all()
        total = 0
        for account_id in ids:
            try:
                total += self.sync_account(account_id) or 0
            except GmailError as exc:
                log.warning("action=sync_failed account=%s reason=%s", account_id, exc)
        return total

    def _claim(self, account_id: int, now: dt.datetime, force: bool = False):
        """(account, when its previous round was) if this worker takes this round, else
        (None, None): one worker reads a mailbox at a time (a lease of SYNC_LEASE), and a
        round is due once per interval unless `force` (a push notification) says now."""
        before = now - dt.timedelta(seconds=self.settings.sync_seconds / 2)
        with self.db.write() as s:
            previous = s.scalar(select(GmailAccount.synced_at).where(
                GmailAccount.id == account_id))
            due = or_(GmailAccount.synced_at.is_(None), GmailAccount.synced_at < before,
                      true() if force else false())
            free = or_(GmailAccount.sync_lease_until.is_(None),
                       GmailAccount.sync_lease_until < now)
            moved = rowcount(s.execute(update(GmailAccount).where(
                GmailAccount.id == account_id, GmailAccount.status == "connected", due, free)
                .values(synced_at=now, sync_lease_until=now + SYNC_LEASE)
                .execution_options(synchronize_session=False)))
            if not moved:
                return None, None
            account = s.get(GmailAccount, account_id)
            s.expunge(account)
            return account, previous

    def sync_account(self, account_id: int, force: bool = False) -> int | None:
        """Read what arrived in one mailbox since the last round (`force`: even if another
        round was this recent). None when another worker is reading it now."""
        now = self.clock()
        account, previous = self._claim(account_id, now, force)
        if account is None:
            return None
        try:
            return self._read(account, previous, now) if can_read(account.scope_list) else 0
        finally:
            with self.db.write() as s:
                s.execute(update(GmailAccount).where(GmailAccount.id == account_id)
                          .values(sync_lease_until=None))

    def _read(self, account: GmailAccount, previous: dt.datetime | None,
              now: dt.datetime) -> int:
        info = self.cipher.decrypt(account.token_blob)
        service = self.gmail.for_grant(info)
        ids, latest = self._new_ids(service, account, previous)
        read = 0
        for gmail_id in ids:
            resource = service.get_message(gmail_id, "raw")
            if "SENT" in resource.get("labelIds", []) or "DRAFT" in resource.get("labelIds", []):
                continue
            raw = resource.get("raw", "")
            incoming = classify(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)),
                                resource.get("threadId"))
            if resource.get("internalDate"):
                incoming.arrived_at = dt.datetime.fromtimestamp(
                    int(resource["internalDate"]) / 1000, dt.UTC)
            with self.db.write() as s:
                self._apply(s, account, incoming, now)
            read += 1
        with self.db.write() as s:
            values = {"history_id": latest} if latest else {}
            self.gmail.keep_refreshed(s, account.id, service, info, now)
            if values:
                s.execute(update(GmailAccount).where(GmailAccount.id == account.id)
                          .values(**values))
        log.info("action=synced account=%s read=%d", account.id, read)
        return read

    def _new_ids(self, service: GmailService, account: GmailAccount,
                 previous: dt.datetime | None):
        if account.history_id:
            try:
                return service.history(account.history_id)
            except HistoryExpired:
                log.info("action=history_expired account=%s", account.id)
        # First round, or history gone: search what arrived since the last round (or since
        # the account was connected), a minute's overlap for clock differences.
        since = previous or account.created_at
        latest = service.profile().get("historyId")
        query = f"-in:sent -in:drafts after:{int(since.timestamp()) - 60}"
        return list(reversed(service.search(query))), latest

    def _apply(self, s, account: GmailAccount, incoming: Incoming, now: dt.datetime) -> None:
        if incoming.kind is None:
            return
        if incoming.kind == "unsubscribe":
            # Every team that sends from this mailbox: its owner's and those it is shared with.
            for team_id in {account.team_id, *teams.shared_with(s, account.id)}:
                if suppress(s, team_id, incoming.sender, "unsubscribed",
                                     "asked by email", now):
                    UNSUBSCRIBES.labels("mail").inc()
            return
        if incoming.kind == "reply" and incoming.sender not in threads.own_addresses(account):
            stop_on_mail_from(s, account, incoming, now)
        message = self._match(s, account, incoming)
        if message is None:
            return
        if incoming.kind == "bounce":
            hard = _hard(incoming.status)
            detail = {"status": incoming.status, "diagnostic": incoming.diagnostic,
                      "hard": hard}
            first = self._first(s, message.id, "bounced")
            if first:
                queue.record_event(s, message.id, "bounced", now, detail)
                BOUNCES.labels("hard" if hard else "soft").inc()
            if hard:
                suppress(s, message.team_id, parseaddr(message.to_addr)[1], "bounced",
                                  f"hard bounce {incoming.status}", now)
                if first:
                    guard.after_signal(s, message, now)
            return
        if not self._answers(account, message, incoming):
            return
        event = "replied" if incoming.kind == "reply" else "auto_replied"
        if self._first(s, message.id, event):
            queue.record_event(s, message.id, event, now, {"from": incoming.sender})
            REPLIES.labels("human" if event == "replied" else "automatic").inc()
            if event == "replied":
                stop_follow_ups(s, message, f"{incoming.sender} replied to a previous step",
                                now)
        if event == "auto_replied":  # each one: a later answer may name the return date
            postpone_follow_ups(s, message, incoming, now)

    @staticmethod
    def _answers(account: GmailAccount, message: Message, incoming: Incoming) -> bool:
        """A reply to ours is one that arrived after ours, from someone other than us.

        Thread order matters: the customer's own message that a support reply answers is
        in the same thread, but it came first.
        """
        ours = replies.own_addresses(account) | {parseaddr(message.from_addr)[1].lower()}
        if incoming.sender in ours:
            return False
        return not (incoming.arrived_at is not None and message.sent_at is not None
                    and incoming.arrived_at <= message.sent_at)

    @staticmethod
    def _first(s, message_id: str, event: str) -> bool:
        return s.scalar(select(MessageEvent.id).where(MessageEvent.message_id == message_id,
                                                      MessageEvent.type == event)) is None

    @staticmethod
    def _match(s, account: GmailAccount, incoming: Incoming) -> Message | None:
        if incoming.refs:
            found = s.scalar(select(Message).where(Message.account_id == account.id,
                                                   Message.rfc822_id.in_(incoming.refs))
                             .order_by(Message.sent_at.desc()).limit(1))
            if found is not None:
                return found
        if incoming.thread_id:
            # The latest of ours that it could answer: sent before it arrived.
            query = select(Message).where(
                Message.account_id == account.id, Message.gmail_thread_id == incoming.thread_id,
                Message.status == "sent")
            if incoming.arrived_at is not None:
                query = query.where(Message.sent_at < incoming.arrived_at)
            return s.scalar(query.order_by(Message.sent_at.desc()).limit(1))
        return None

