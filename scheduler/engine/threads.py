"""What a reply is, and the last look at a thread before a follow-up goes into it.

A follow-up that stops on a reply is sent only after one cheap look at its thread
(`threads.get`, metadata of a few headers: 10 quota units), so that a reply that arrived
since the last mailbox sync, or whose notification was lost, still stops it.

An automatic answer is not a reply: `Auto-Submitted` other than "no" (RFC 3834),
`X-Autoreply`, `X-Autorespond`, `Precedence: auto_reply|bulk|junk`, or a subject that
out-of-office tools write, in English, German, French and Spanish.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from email.utils import parseaddr

from prometheus_client import Counter

from gmail_client.api import GmailService

LAST_CHECKS = Counter("mailrelease_last_checks", "Looks at a thread right before a follow-up "
                      "(found: a reply stopped it; clear: none; skipped: nothing to look at)",
                      ["outcome"])
# What a look at a thread reads of each message.
HEADERS = ("From", "Subject", "Auto-Submitted", "X-Autoreply", "X-Autorespond",
           "Precedence")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|answer)|auto:|autoreply|out of (the )?office"
    r"|away from (the )?office|on vacation|on holiday|i am out of the office"
    r"|abwesenheitsnotiz|automatische antwort|abwesend|nicht im b(ü|ue)ro|urlaub"
    r"|r(é|e)ponse automatique|absence du bureau|absent(e)? du bureau|message d'absence"
    r"|en cong(é|e)s?"
    r"|respuesta autom(á|a)tica|fuera de la oficina|ausente|fuera de oficina"
    r"|de vacaciones)", re.I)
_MACHINE_PRECEDENCE = ("auto_reply", "bulk", "junk")


# Free-mail domains: "anyone at the same company" means nothing there.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
    "yahoo.com", "ymail.com", "icloud.com", "me.com", "mac.com", "aol.com", "gmx.com",
    "gmx.de", "gmx.net", "web.de", "proton.me", "protonmail.com", "mail.com", "yandex.com",
    "yandex.ru", "zoho.com", "orange.fr", "free.fr", "laposte.net", "t-online.de"})
STOPS_ON_MAIL = ("reply", "person", "domain")  # follow_unless values a reply stops


def company_domain(address: str) -> str | None:
    """The address's domain when it is a company's (not a free-mail provider's)."""
    domain = address.rpartition("@")[2].lower()
    return None if not domain or domain in FREE_MAIL else domain


def wrote_since(service: GmailService, who: str, since: dt.datetime, own: set[str],
                most: int = 5) -> str | None:
    """The address of someone who wrote to the mailbox from `who` (an address, or a
    domain) in any thread after `since`, not automatically; None when nobody did."""
    query = f"from:{who} -in:sent -in:drafts after:{int(since.timestamp())}"
    for gmail_id in service.search(query, most):
        message = service.get_message(gmail_id, "metadata")
        arrived = dt.datetime.fromtimestamp(int(message.get("internalDate") or 0) / 1000,
                                            dt.UTC)
        headers = {h["name"].lower(): h["value"] for h in
                   (message.get("payload") or {}).get("headers") or ()}
        sender = parseaddr(headers.get("from", ""))[1].lower()
        if arrived > since and sender and sender not in own and not is_automatic(headers):
            return sender
    return None


def own_addresses(account) -> set[str]:
    """The mailbox's own address and its sendAs aliases, lower case."""
    return {account.email.lower()} | {a["email"].lower() for a in account.send_as or ()}


def is_automatic(headers: Mapping[str, str]) -> bool:
    """Whether a received message is an automatic answer (headers by lower-case name)."""
    if (headers.get("auto-submitted") or "no").strip().lower() != "no":
        return True
    if headers.get("x-autoreply") or headers.get("x-autorespond"):
        return True
    if (headers.get("precedence") or "").strip().lower() in _MACHINE_PRECEDENCE:
        return True
    return bool(_AUTO_SUBJECT.match(headers.get("subject") or ""))


def reply_in_thread(service: GmailService, thread_id: str, since: dt.datetime,
                    own: set[str]) -> str | None:
    """The address of someone (not us) who answered in the thread after `since`, with a
    message that is not automatic; None when nobody did."""
    thread = service.get_thread(thread_id, HEADERS)
    for message in thread.get("messages") or ():
        labels = message.get("labelIds") or ()
        if "SENT" in labels or "DRAFT" in labels:
            continue
        arrived = dt.datetime.fromtimestamp(int(message.get("internalDate") or 0) / 1000,
                                            dt.UTC)
        if arrived <= since:
            continue
        headers = {h["name"].lower(): h["value"] for h in
                   (message.get("payload") or {}).get("headers") or ()}
        sender = parseaddr(headers.get("from", ""))[1].lower()
        if sender and sender not in own and not is_automatic(headers):
            return sender
    return None
