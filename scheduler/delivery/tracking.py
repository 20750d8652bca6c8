"""Signed links in sent mail (open pixel, click redirect, unsubscribe, AMP data) and what
happens when they are used.

Every link carries an HMAC-signed token (itsdangerous), so a tampered link matches nothing
(404) and the click redirect only goes where the message itself linked: no open redirect.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import html as html_lib
import re
from dataclasses import dataclass
from email.utils import parseaddr

from itsdangerous import BadSignature, URLSafeSerializer
from prometheus_client import Counter
from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.orm import Session

from scheduler.store import queue
from scheduler.store.models import Contact, Message, MessageEvent, table

OPENS = Counter("mailrelease_opens", "Opens of sent mail", ["kind"])
CLICKS = Counter("mailrelease_clicks", "Clicks in sent mail", ["kind"])
UNSUBSCRIBES = Counter("mailrelease_unsubscribes", "Unsubscribes", ["how"])

# Image proxies that fetch images for the reader: a fetch through one of them soon after
# delivery is the proxy (or a privacy pre-fetch), not the person.
_PROXY_AGENTS = ("googleimageproxy", "yahoomailproxy", "outlook", "bingpreview", "proofpoint",
                 "barracuda", "mimecast")
MACHINE_OPEN_SECONDS = 60
# Link scanners click within seconds of delivery, with HEAD, or every link at once.
MACHINE_CLICK_SECONDS = 10
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.I)
PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00"
             b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


class Links:
    """Makes and reads the signed tokens of one deployment (keyed by its secret key)."""

    def __init__(self, secret_key: str, public_url: str):
        key = hashlib.sha256(b"mailrelease-links:" + secret_key.encode()).hexdigest()
        self.public_url = public_url.rstrip("/")
        self._open = URLSafeSerializer(key, salt="open")
        self._click = URLSafeSerializer(key, salt="click")
        self._unsub = URLSafeSerializer(key, salt="unsubscribe")
        self._amp = URLSafeSerializer(key, salt="amp")

    def open_url(self, message_id: str) -> str:
        return f"{self.public_url}/t/o/{self._open.dumps(message_id)}.gif"

    def click_url(self, message_id: str, url: str) -> str:
        return f"{self.public_url}/t/c/{self._click.dumps([message_id, url])}"

    def unsubscribe_url(self, message_id: str) -> str:
        return f"{self.public_url}/u/{self._unsub.dumps(message_id)}"

    def live_url(self, message_id: str, source: str) -> str:
        return f"{self.public_url}/amp/{self._amp.dumps([message_id, source])}"

    def read(self, kind: str, token: str):
        """The signed value, or None for a tampered or foreign token."""
        serializer = {"open": self._open, "click": self._click, "unsubscribe": self._unsub,
                      "amp": self._amp}[kind]
        try:
            return serializer.loads(token)
        except BadSignature:
            return None


@dataclass(frozen=True)
class Tracked:
    """A message's HTML and text with tracking and unsubscribe added, and its headers."""

    html: str
    text: str
    headers: dict[str, str]


def decorate(html: str, text: str, *, message_id: str, sender: str, links: Links,
             track: bool, unsubscribe: bool, unsubscribe_url: str | None) -> Tracked:
    """Add click redirects and an open pixel (if `track`), and unsubscribe headers and a
    visible link (if `unsubscribe`, i.e. not transactional)."""
    headers: dict[str, str] = {}
    if unsubscribe and unsubscribe_url:
        headers["List-Unsubscribe"] = (f"<{unsubscribe_url}>, "
                                       f"<mailto:{sender}?subject=unsubscribe>")
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if unsubscribe_url not in html:
            html = _before_body_end(html, f'<p style="font-size:12px;color:#6a737d">'
                                          f'<a href="{unsubscribe_url}">Unsubscribe</a></p>')
        if unsubscribe_url not in text:
            text = text.rstrip("\n") + f"\n\nUnsubscribe: {unsubscribe_url}\n"
    if track:
        def rewrite(match: re.Match) -> str:
            target = html_lib.unescape(match.group(3))
            if target == unsubscribe_url:
                return match.group(0)
            return (f"{match.group(1)}{match.group(2)}{links.click_url(message_id, target)}"
                    f"{match.group(2)}")
        html = _HREF.sub(rewrite, html)
        html = _before_body_end(html, f'<img src="{links.open_url(message_id)}" width="1" '
                                      f'height="1" alt="" style="display:none">')
    return Tracked(html, text, headers)


def _before_body_end(html: str, snippet: str) -> str:
    at = html.lower().rfind("</body>")
    return html + snippet if at < 0 else html[:at] + snippet + html[at:]


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


def suppress(session: Session, team_id: int, email: str, state: str, reason: str,
             now: dt.datetime) -> bool:
    """Mark an address unsubscribed or bounced (creating its contact if needed).

    Returns True when its state changed.
    """
    email = email.strip().lower()
    contact = session.scalar(select(Contact).where(Contact.team_id == team_id,
                                                   Contact.email == email))
    if contact is None:
        session.add(Contact(team_id=team_id, email=email, attributes={}, subscription=state,
                            subscription_reason=reason, subscription_changed_at=now,
                            created_at=now, updated_at=now))
        return True
    if contact.subscription == state or (contact.subscription == "bounced"
                                         and state == "unsubscribed"):
        return False
    contact.subscription, contact.subscription_reason = state, reason
    contact.subscription_changed_at = contact.updated_at = now
    return True


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
    return message


_C = table(Contact)
# Read before every non-transactional send: built once, with bind parameters.
_SUBSCRIPTION = select(_C.c.subscription, _C.c.subscription_reason).where(
    _C.c.team_id == bindparam("b_team"), _C.c.email == bindparam("b_email"))


def subscription_of(session, team_id: int, address: str) -> tuple[str, str | None] | None:
    """(state, reason) of an address's contact, or None when it is not a contact."""
    row = session.execute(_SUBSCRIPTION, {"b_team": team_id,
                                          "b_email": address.strip().lower()}).first()
    return (row[0], row[1]) if row else None


def live_url_function(links: Links | None, message_id: str | None, sources: list | None):
    """live_url('NAME') for a template: the signed URL serving source NAME at open time.

    Without `links` (checking a template before anything is sent) it returns a stand-in.
    A name that is not one of the template's sources is a template error.
    """
    names = {s["name"] for s in sources or ()}

    def live_url(name: str) -> str:
        if name not in names:
            from scheduler.errors import TemplateError
            raise TemplateError(f"live_url('{name}'): the template has no source named "
                                f"'{name}'", field="amp")
        if links is None or message_id is None:
            return f"https://live.invalid/{name}"
        return links.live_url(message_id, name)
    return live_url


def stand_in_links(sources: list | None) -> dict:
    """What unsubscribe_url and live_url render as when a template is checked."""
    return {"unsubscribe_url": "https://unsubscribe.invalid/",
            "live_url": live_url_function(None, None, sources)}


ENGAGEMENT_COUNTS = ("queued", "sent", "cancelled", "opened", "clicked", "replied", "bounced",
                     "unsubscribed")


def engagement_counts(session, key, *where) -> dict:
    """Per value of `key` over the messages matching `where`: how many were queued, sent,
    cancelled; how many people opened, clicked, replied; bounces and unsubscribes.

    Machine opens and clicks are left out (they are counted on the message apart).
    """
    out: dict = {}

    def entry(k):
        return out.setdefault(k, dict.fromkeys(ENGAGEMENT_COUNTS, 0))
    rows = session.execute(select(
        key, func.count(),
        func.sum(case((Message.status == "sent", 1), else_=0)),
        func.sum(case((Message.status == "cancelled", 1), else_=0)),
        func.sum(case((Message.opens > 0, 1), else_=0)),
        func.sum(case((Message.clicks > 0, 1), else_=0)))
        .where(*where).group_by(key))
    for k, queued, sent, cancelled, opened, clicked in rows:
        entry(k).update(queued=queued, sent=sent or 0, cancelled=cancelled or 0,
                        opened=opened or 0, clicked=clicked or 0)
    events = session.execute(select(key, MessageEvent.type,
                                    func.count(func.distinct(MessageEvent.message_id)))
                             .join(MessageEvent, MessageEvent.message_id == Message.id)
                             .where(*where, MessageEvent.type.in_(("replied", "bounced",
                                                                   "unsubscribed")))
                             .group_by(key, MessageEvent.type))
    for k, kind, count in events:
        entry(k)[kind] = count
    return out
