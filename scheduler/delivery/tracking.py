"""Signed links in sent mail (open pixel, click redirect, unsubscribe, AMP data) and what
happens when they are used.

Every link carries an HMAC-signed token (itsdangerous), so a tampered link matches nothing
(404) and the click redirect only goes where the message itself linked: no open redirect.
"""
from __future__ import annotations

import datetime as dt
from email.utils import parseaddr

from prometheus_client import Counter
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from scheduler.audience import guard
from scheduler.audience.suppression import UNSUBSCRIBES, suppress
from scheduler.store import queue
from scheduler.store.models import Message, MessageEvent

OPENS = Counter("mailrelease_opens", "Opens of sent mail", ["kind"])
CLICKS = Counter("mailrelease_clicks", "Clicks in sent mail", ["kind"])

# Image proxies that fetch images for the reader: a fetch through one of them soon after
# delivery is the proxy (or a privacy pre-fetch), not the person.
_PROXY_AGENTS = ("googleimageproxy", "yahoomailproxy", "outlook")
# Security scanners and link previewers fetch whenever they look at mail: never a person.
_SCANNER_AGENTS = ("bingpreview", "proofpoint", "barracuda", "mimecast", "symantec",
                   "forcepoint", "trendmicro", "fortinet", "sophos")
MACHINE_OPEN_SECONDS = 60
# One look at a message fetches each of its images (the pixel, its live images): fetches
# this close to the open they follow are that same open, not another.
SAME_OPEN_SECONDS = 30
# Link scanners click within seconds of delivery, with HEAD, or every link at once.
MACHINE_CLICK_SECONDS = 10
PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00"
             b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def _since_sent(message, now: dt.datetime) -> float | None:
    return (now - message.sent_at).total_seconds() if message.sent_at else None


def machine_fetch(user_agent: str, method: str, age: float | None) -> bool:
    """Whether an image fetch is a machine's: a HEAD, a known scanner, or an image proxy
    fetching within MACHINE_OPEN_SECONDS of delivery."""
    agent = (user_agent or "").lower()
    if method == "HEAD" or any(s in agent for s in _SCANNER_AGENTS):
        return True
    return any(p in agent for p in _PROXY_AGENTS) and age is not None and (
        age < MACHINE_OPEN_SECONDS)


def record_open(session: Session, message_id: str, user_agent: str,
                now: dt.datetime, method: str = "GET", image: str = "pixel") -> None:
    """One of a message's images was fetched (the open pixel, or a live image): an open
    by a person, or a machine signal (machine_fetch). Fetches within SAME_OPEN_SECONDS of
    the last counted one are the same open; the first person's open goes on the timeline
    (once, however many images arrive at once)."""
    # Two columns, not the row: a campaign's opens arrive by the thousand.
    message = session.execute(select(Message.id, Message.sent_at).where(
        Message.id == message_id, Message.status == "sent")).first()
    if message is None:
        return
    machine = machine_fetch(user_agent, method, _since_sent(message, now))
    count, last = ((Message.machine_opens, Message.last_machine_open_at) if machine
                   else (Message.opens, Message.last_open_at))
    # One conditional statement: of several fetches at once, one counts (and one is first).
    opens = session.execute(
        update(Message).where(Message.id == message.id, or_(
            last.is_(None), last < now - dt.timedelta(seconds=SAME_OPEN_SECONDS)))
        .values({count: count + 1, last: now}).returning(count)).scalar()
    if opens is None:
        return
    OPENS.labels("machine" if machine else "human").inc()
    if opens == 1:
        detail = {"user_agent": (user_agent or "")[:200]}
        if method == "HEAD":
            detail["method"] = "HEAD"
        if image != "pixel":
            detail["image"] = image
        queue.record_event(session, message.id, "machine_open" if machine else "opened",
                           now, detail)


def record_click(session: Session, message_id: str, url: str, method: str,
                 now: dt.datetime) -> None:
    """A tracked link was followed: by a person, or a scanner (HEAD, too soon, all at once)."""
    message = session.get(Message, message_id)
    if message is None:
        return
    age = _since_sent(message, now)
    burst = _other_links_just_clicked(session, message_id, url, now)
    machine = method == "HEAD" or (age is not None and age < MACHINE_CLICK_SECONDS) or burst
    _count_click(session, message, machine, now, url[:500])


def _other_links_just_clicked(session: Session, message_id: str, url: str,
                              now: dt.datetime) -> bool:
    since = now - dt.timedelta(seconds=2)
    rows = session.scalars(select(MessageEvent.detail).where(
        MessageEvent.message_id == message_id,
        MessageEvent.type.in_(("clicked", "machine_click")),
        MessageEvent.at >= since)).all()
    return any((d or {}).get("url") != url for d in rows)


def _count_click(session: Session, message: Message, machine: bool, now: dt.datetime,
                 url: str) -> None:
    column = Message.machine_clicks if machine else Message.clicks
    first = getattr(message, column.key) == 0
    session.execute(update(Message).where(Message.id == message.id)
                    .values({column: column + 1}))
    CLICKS.labels("machine" if machine else "human").inc()
    event = "machine_click" if machine else "clicked"
    # The timeline gets every distinct link's click, and one flagged entry for machines.
    if first or (not machine and not _clicked_before(session, message.id, url)):
        queue.record_event(session, message.id, event, now, {"url": url})


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


