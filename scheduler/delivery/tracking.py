"""Signed links in sent mail (open pixel, click redirect, unsubscribe, AMP data) and what
happens when they are used.

Every link carries an HMAC-signed token (itsdangerous), so a tampered link matches nothing
(404) and the click redirect only goes where the message itself linked: no open redirect.
"""
from __future__ import annotations

import datetime as dt
from email.utils import parseaddr

from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scheduler.audience import guard
from scheduler.audience.suppression import UNSUBSCRIBES, suppress
from scheduler.store import queue
from scheduler.store.models import Message, MessageEvent

OPENS = Counter("mailrelease_opens", "Opens of sent mail", ["kind"])
CLICKS = Counter("mailrelease_clicks", "Clicks in sent mail", ["kind"])

# Image proxies that fetch images for the reader: a fetch through one of them soon after
# delivery is the proxy (or a privacy pre-fetch), not the person.
_PROXY_AGENTS = ("googleimageproxy", "yahoomailproxy", "outlook", "bingpreview", "proofpoint",
                 "barracuda", "mimecast")
MACHINE_OPEN_SECONDS = 60
# Link scanners click within seconds of delivery, with HEAD, or every link at once.
MACHINE_CLICK_SECONDS = 10
PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00"
             b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def _since_sent(message: Message, now: dt.datetime) -> float | None:
    return (now - message.sent_at).total_seconds() if message.sent_at else None


def record_open(session: Session, message_id: str, user_agent: str,
                now: dt.datetime) -> None:
    """An open pixel was fetched: a person, or a proxy pre-fetching right after delivery."""
    message = session.get(Message, message_id)
    if message is None:
        return
    age = _since_sent(message, now)
    proxy = any(p in (user_agent or "").lower() for p in _PROXY_AGENTS)
    machine = proxy and age is not None and age < MACHINE_OPEN_SECONDS
    _count(session, message, "open", machine, now, {"user_agent": (user_agent or "")[:200]})


def record_click(session: Session, message_id: str, url: str, method: str,
                 now: dt.datetime) -> None:
    """A tracked link was followed: by a person, or a scanner (HEAD, too soon, all at once)."""
    message = session.get(Message, message_id)
    if message is None:
        return
    age = _since_sent(message, now)
    burst = _other_links_just_clicked(session, message_id, url, now)
    machine = method == "HEAD" or (age is not None and age < MACHINE_CLICK_SECONDS) or burst
    _count(session, message, "click", machine, now, {"url": url[:500]})


def _other_links_just_clicked(session: Session, message_id: str, url: str,
                              now: dt.datetime) -> bool:
    since = now - dt.timedelta(seconds=2)
    rows = session.scalars(select(MessageEvent.detail).where(
        MessageEvent.message_id == message_id,
        MessageEvent.type.in_(("clicked", "machine_click")),
        MessageEvent.at >= since)).all()
    return any((d or {}).get("url") != url for d in rows)


def _count(session: Session, message: Message, kind: str, machine: bool, now: dt.datetime,
           detail: dict) -> None:
    column = {("open", False): Message.opens, ("open", True): Message.machine_opens,
              ("click", False): Message.clicks, ("click", True): Message.machine_clicks}[
        (kind, machine)]
    first = getattr(message, column.key) == 0
    session.execute(update(Message).where(Message.id == message.id)
                    .values({column: column + 1}))
    (OPENS if kind == "open" else CLICKS).labels("machine" if machine else "human").inc()
    if machine:
        event = f"machine_{kind}"
    else:
        event = "opened" if kind == "open" else "clicked"
    # The timeline gets a person's first open and every distinct link's click, and one
    # flagged entry per kind of machine signal.
    if first or (kind == "click" and not machine and not _clicked_before(session, message.id,
                                                                          detail["url"])):
        queue.record_event(session, message.id, event, now, detail)


def _clicked_before(session: Session, message_id: str, url: str) -> bool:
    rows = session.scalars(select(MessageEvent.detail).where(
        MessageEvent.message_id == message_id, MessageEvent.type == "clicked")).all()
    return any((d or {}).get("url") == url for d in rows)


def unsubscribe(session: Session, message_id: str, how: str, now: dt.datetime) -> Message | None:
    """The recipient of `message_id` unsubscribed (link, one-click POST or mail)."""
    message = session.get(Message, message_id)
    if message is None:
        return None
    address = parseaddr(message.to_addr)[1]
    if suppress(session, message.team_id, address, "unsubscribed", f"unsubscribed ({how})",
                now):
        UNSUBSCRIBES.labels(how).inc()
        queue.record_event(session, message.id, "unsubscribed", now, {"how": how})
        guard.after_signal(session, message, now)
    return message


