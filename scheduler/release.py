"""Releasing one claimed message: render, build MIME, reconcile if needed, send, record."""
from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr

from gmail_client.errors import (
    AmbiguousSendError,
    DailyLimitReached,
    GmailError,
    PermanentGmailError,
    ReconnectNeeded,
    TransientGmailError,
)
from gmail_client.mime import build_message
from gmail_client.oauth import ClientConfig, can_read
from scheduler import accounts, queue
from scheduler.crypto import TokenCipher
from scheduler.db import Database, utcnow
from scheduler.errors import MissingData, TemplateError
from scheduler.models import GmailAccount, Message
from scheduler.personalize import render_message
from scheduler.sender import ServicePool

log = logging.getLogger("mailrelease.release")

BACKOFF_BASE_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 3600.0


def _address(value: str) -> Address:
    name, addr = parseaddr(value)
    return Address(display_name=name, addr_spec=addr)


def backoff(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait: exponential with full jitter, but never less than Retry-After."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    delay = rng.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class _Job:
    """A snapshot of what sending needs, detached from any session."""

    message: Message
    account: GmailAccount
    token_info: dict


class Releaser:
    """Sends claimed messages through the sender's Gmail account."""

    def __init__(self, db: Database, cipher: TokenCipher, client: ClientConfig | None,
                 api_endpoint: str | None, clock=utcnow):
        self.db = db
        self.cipher = cipher
        self.client = client
        self.clock = clock
        self.pool = ServicePool(client, api_endpoint) if client else None
        self._rng = random.Random()

    def _load(self, claim: queue.Claim) -> _Job:
        with self.db.read() as session:
            message = session.get(Message, claim.message_id)
            account = message.account
            session.expunge_all()
        return _Job(message, account, self.cipher.decrypt(account.token_blob))

    def release(self, claim: queue.Claim) -> str:
        """Do everything for one claim; returns the status it ended in."""
        job = self._load(claim)
        message, account = job.message, job.account
        if self.pool is None:
            return self._hold(claim, "no OAuth client is configured (credentials.json)")
        if account.status != "connected":
            return self._hold(claim, f"{account.email} needs reconnecting: sign in with "
                                     f"Google again to release this message")
        try:
            parts = render_message(message.subject_tpl, message.html_tpl, message.text_tpl,
                                   message.data)
        except (MissingData, TemplateError) as exc:
            return self._hold(claim, str(exc))
        raw = build_message(
            sender=_address(message.from_addr), to=_address(message.to_addr),
            subject=parts.subject, html=parts.html, text=parts.text,
            message_id=message.rfc822_id, date=self.clock(),
            in_reply_to=message.in_reply_to,
        )
        service = self.pool.get(account.id, job.token_info)
        try:
            if claim.needs_reconcile:
                outcome = self._reconcile(claim, service, message, account, parts.subject)
                if outcome is not None:
                    return outcome
            result = service.send(raw, thread_id=message.reply_thread_id)
        except GmailError as exc:
            return self._on_error(claim, account, exc)
        finally:
            self._persist_refresh(account.id, service, job.token_info)
        with self.db.write() as session:
            moved = queue.mark_sent(session, claim, self.clock(), result["id"],
                                    result.get("threadId", ""), parts.subject)
        log.info("action=sent message_id=%s account=%s gmail_id=%s attempt=%d lease_kept=%s",
                 message.id, account.id, result["id"], claim.attempts, moved)
        return "sent"

    def _reconcile(self, claim, service, message, account, subject) -> str | None:
        """A previous attempt may have left: look for it by Message-ID before resending."""
        if not can_read(account.scope_list):
            return self._hold(claim, "delivery unknown: an earlier attempt may have been sent "
                                     "and this account did not grant read access to check; "
                                     "send now to send it again, or cancel",
                              needs_reconcile=True)
        found = service.find_by_rfc822_id(message.rfc822_id)
        if not found:
            log.info("action=reconcile message_id=%s found=0", message.id)
            return None
        with self.db.write() as session:
            queue.mark_sent(session, claim, self.clock(), found[0]["id"],
                            found[0].get("threadId", ""), subject, reconciled=True)
        log.info("action=reconcile message_id=%s found=1 gmail_id=%s", message.id,
                 found[0]["id"])
        return "sent"

    def _on_error(self, claim, account, exc: GmailError) -> str:
        now = self.clock()
        reason = f"Gmail {exc.status or ''} {exc.reason}: {exc}".replace("  ", " ")
        log.warning("action=send_error message_id=%s account=%s class=%s status=%s reason=%s",
                    claim.message_id, account.id, type(exc).__name__, exc.status, exc.reason)
        if isinstance(exc, ReconnectNeeded):
            with self.db.write() as session:
                accounts.mark_reconnect_needed(session, account.id, str(exc), now)
            return self._hold(claim, f"{account.email} needs reconnecting: {exc}")
        if isinstance(exc, DailyLimitReached):
            retry_at = exc.retry_at or now + dt.timedelta(hours=1)
            with self.db.write() as session:
                queue.mark_retry(session, claim, now, retry_at,
                                 f"daily sending limit reached: {exc}", needs_reconcile=False)
            return "retry_wait"
        if isinstance(exc, TransientGmailError):
            ambiguous = isinstance(exc, AmbiguousSendError)
            delay = backoff(claim.attempts, exc.retry_after, self._rng)
            with self.db.write() as session:
                queue.mark_retry(session, claim, now, now + dt.timedelta(seconds=delay),
                                 reason, needs_reconcile=ambiguous or claim.needs_reconcile)
            return "retry_wait"
        assert isinstance(exc, PermanentGmailError), exc
        with self.db.write() as session:
            queue.mark_failed(session, claim, now, reason)
        return "failed"

    def _hold(self, claim, reason: str, needs_reconcile: bool = False) -> str:
        with self.db.write() as session:
            queue.mark_held(session, claim, self.clock(), reason, needs_reconcile)
        log.info("action=held message_id=%s reason=%r", claim.message_id, reason[:200])
        return "held"

    def _persist_refresh(self, account_id: int, service, before: dict) -> None:
        info = ServicePool.refreshed_info(service, before)
        if info is None:
            return
        if not info.get("refresh_token"):
            info["refresh_token"] = before.get("refresh_token")
        with self.db.write() as session:
            accounts.save_refreshed_token(session, self.cipher, account_id, info, self.clock())
        before.update(info)
        log.info("action=token_refreshed account=%s", account_id)
