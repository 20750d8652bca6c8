"""Cancel, including a message that a stopped worker left 'sending'.

Such a message is looked up in Gmail by its Message-ID first, outside any database
transaction (a Gmail call must not hold SQLite's write lock): found, it becomes sent
and the cancel is refused; not found, it is cancelled.
"""
from __future__ import annotations

import datetime as dt

from gmail_client.errors import GmailError
from gmail_client.oauth import can_read
from scheduler.engine import messages
from scheduler.engine.connections import Gmail
from scheduler.errors import Conflict
from scheduler.store.audit import Actor
from scheduler.store.db import Database
from scheduler.store.models import GmailAccount


def cancel(db: Database, gmail: Gmail, actor: Actor, message_id: str, now: dt.datetime) -> dict:
    """Cancel the team's message; returns its API representation (DomainError otherwise)."""
    try:
        with db.write() as s:
            return messages.message_as_dict(
                messages.cancel_message(s, actor, message_id, now))
    except messages.SendInDoubt as exc:
        doubt = exc
    found = _look_up(db, gmail, doubt)
    with db.write() as s:
        message = messages.settle_cancel(s, actor, doubt, found, now)
        out = messages.message_as_dict(message)
    if out["status"] == "sent":
        raise Conflict("cannot cancel: Gmail shows this message was already sent",
                       field="status", code="not_cancelable")
    return out


def _look_up(db: Database, gmail: Gmail,
             doubt: messages.SendInDoubt) -> list[dict] | None:
    """Gmail's messages with that Message-ID, or None when the account cannot be read."""
    with db.read() as s:
        account = s.get_one(GmailAccount, doubt.account_id)
        s.expunge(account)
    if account.status != "connected" or not can_read(account.scope_list):
        return None
    try:
        service = gmail.for_account(account)
        return service.find_by_rfc822_id(doubt.rfc822_id)
    except GmailError as exc:
        raise Conflict(f"cannot cancel yet: Gmail could not be asked whether it was sent "
                       f"({exc}); try again", field="status", code="send_in_doubt") from None
