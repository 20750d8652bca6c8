"""Support replies in Gmail threads: recent threads of a mailbox, and a reply that lands in
the same thread (threadId, In-Reply-To, References, the "Re:" subject) personalized with
the customer's name and the thread's subject."""
from __future__ import annotations

import base64
import re
from dataclasses import asdict, dataclass
from email.headerregistry import Address
from email.utils import formataddr, getaddresses, parseaddr

from gmail_client.api import GmailService
from scheduler import addresses
from scheduler.commands import NewMessage, ThreadReply
from scheduler.content.personalize import html_to_text
from scheduler.content.templates import REPLY_SUBJECT
from scheduler.engine.threads import own_addresses
from scheduler.errors import InvalidInput
from scheduler.store.models import GmailAccount, Template
from scheduler.typed import GMAIL_ID, make

HEADERS = ("Subject", "From", "To", "Reply-To", "Message-ID", "References", "Date")
MAX_THREADS = 50
# References keeps the first id and the latest ones: RFC 5322 allows trimming, and Gmail
# threads on any of them.
MAX_REFERENCES = 20
_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv|tr)\s*(\[\d+\])?\s*:\s*)+", re.I)


@dataclass(frozen=True)
class Thread:
    """What a reply needs of a Gmail thread."""

    id: str
    subject: str
    customer_name: str
    customer_email: str
    last_message_id: str | None
    references: str | None
    messages: int
    last_at_ms: int
    snippet: str

    def as_dict(self) -> dict:
        """JSON form."""
        return asdict(self)


def bare_subject(subject: str) -> str:
    """The subject without Re:/Fwd: prefixes."""
    return _PREFIX.sub("", subject or "").strip()


def _headers(message: dict) -> dict[str, str]:
    return {h["name"].lower(): h["value"] for h in
            message.get("payload", {}).get("headers", [])}


def summarize(resource: dict, own: set[str]) -> Thread:
    """A threads.get resource (metadata) as a Thread; the customer is the latest sender who
    is not one of `own` addresses (else whom the first message went to), and a reply goes
    to the Reply-To that customer set, if any."""
    messages = resource.get("messages") or []
    if not messages:
        raise InvalidInput(f"thread {resource.get('id')} has no messages", field="thread_id")
    heads = [_headers(m) for m in messages]
    customer = None
    for h in reversed(heads):
        name, addr = _usable(h.get("from", ""), own)
        if addr:
            reply_name, reply_addr = _usable(h.get("reply-to", ""), own)
            customer = (reply_name or name, reply_addr) if reply_addr else (name, addr)
            break
    if customer is None:  # only our own messages: whom the first one went to
        to = [p for p in (_usable(v, own) for v in _split(heads[0].get("to", ""))) if p[1]]
        customer = to[0] if to else ("", "")
    last = heads[-1]
    last_id = last.get("message-id") or None
    chain = (last.get("references") or "").split()
    if last_id and last_id not in chain:
        chain.append(last_id)
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1):]
    name, addr = customer
    return Thread(id=resource["id"], subject=bare_subject(heads[0].get("subject", "")),
                  customer_name=name or addr.partition("@")[0], customer_email=addr.lower(),
                  last_message_id=last_id, references=" ".join(chain) or None,
                  messages=len(messages), last_at_ms=int(messages[-1].get("internalDate", 0)),
                  snippet=messages[-1].get("snippet", ""))


def _split(header: str) -> list[str]:
    return [formataddr(pair) for pair in getaddresses([header])]


def _usable(header: str, own: set[str]) -> tuple[str, str]:
    """(name, address) of a From/Reply-To/To value we could reply to, or ("", "") for a
    malformed one (mail from anyone can be odd) or one of our own addresses."""
    name, addr = parseaddr(header or "")
    try:
        addr = addresses.normalize_email(addr)
    except addresses.AddressError:
        return "", ""
    if addr in own:
        return "", ""
    return " ".join(name.split())[:200], addr


def recent_threads(service: GmailService, account: GmailAccount, query: str = "",
                   limit: int = 20) -> list[Thread]:
    """The mailbox's most recent threads (Gmail's search syntax in `query`; the inbox by
    default), newest activity first."""
    if not 1 <= limit <= MAX_THREADS:
        raise InvalidInput(f"limit must be between 1 and {MAX_THREADS}", field="limit")
    own = own_addresses(account)
    found = service.list_threads(query.strip() or "in:inbox", limit)
    return [summarize(service.get_thread(t["id"], HEADERS), own) for t in found]


def read_conversation(service: GmailService, account: GmailAccount, thread_id: str) -> list[dict]:
    """The thread's latest messages in full, for whoever answers it to read."""
    if not isinstance(thread_id, str) or not GMAIL_ID.fullmatch(thread_id):
        raise InvalidInput("thread_id is not a Gmail thread id", field="thread_id")
    return conversation(service.get_conversation(thread_id), own_addresses(account))


def read_thread(service: GmailService, account: GmailAccount, thread_id: str) -> Thread:
    """One thread of the mailbox (404 from Gmail when it is not there)."""
    if not isinstance(thread_id, str) or not GMAIL_ID.fullmatch(thread_id):
        raise InvalidInput("thread_id is not a Gmail thread id", field="thread_id")
    return summarize(service.get_thread(thread_id, HEADERS), own_addresses(account))


MAX_SHOWN_MESSAGES = 10
MAX_SHOWN_CHARS = 20_000


def _part_text(part: dict) -> tuple[str, str] | None:
    """(kind, text) of the first text/plain (else text/html) part of a full payload."""
    found: dict[str, str] = {}
    stack = [part]
    while stack:
        node = stack.pop(0)
        mime = (node.get("mimeType") or "").lower()
        if mime.startswith("multipart/"):
            stack.extend(node.get("parts") or [])
            continue
        data = (node.get("body") or {}).get("data")
        if mime in ("text/plain", "text/html") and data and mime not in found:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            found[mime] = raw.decode("utf-8", "replace")
    if "text/plain" in found:
        return "text", found["text/plain"]
    if "text/html" in found:
        return "html", found["text/html"]
    return None


def conversation(resource: dict, own: set[str]) -> list[dict]:
    """The thread's latest messages as people read them: who, when, whether it is ours,
    and the text (the HTML part reduced to text when there is no plain one)."""
    out = []
    for message in (resource.get("messages") or [])[-MAX_SHOWN_MESSAGES:]:
        heads = _headers(message)
        name, addr = parseaddr(heads.get("from", ""))
        body = _part_text(message.get("payload") or {})
        text = message.get("snippet", "")
        if body is not None:
            kind, text = body
            if kind == "html":
                text = html_to_text(text)
        out.append({"from_name": " ".join(name.split())[:200], "from": addr.lower(),
                    "ours": addr.lower() in own,
                    "at_ms": int(message.get("internalDate", 0) or 0),
                    "text": text.strip()[:MAX_SHOWN_CHARS]})
    return out


def reply_data(thread: Thread) -> dict:
    """What a saved reply sees of the thread besides the customer's contact fields."""
    first = thread.customer_name.split()[0] if thread.customer_name.split() else ""
    return {"customer_name": thread.customer_name, "first_name": first,
            "customer_email": thread.customer_email, "thread_subject": thread.subject}


def reply_message(thread: Thread, account: GmailAccount, command: ThreadReply,
                  template: Template | None) -> NewMessage:
    """The message replying in `thread` from `account` (or one of its aliases): the saved
    reply's (or the inline) HTML and text, the thread's "Re:" subject, headers that keep
    it in the thread, and timing and data from the command."""
    html: str | None
    if template is not None:
        html, text = template.html, template.text
    else:
        html, text = command.html, command.text
    if not thread.customer_email:
        raise InvalidInput("the thread has no one to reply to", field="thread_id")
    return make(
        NewMessage,
        to=str(Address(display_name=thread.customer_name, addr_spec=thread.customer_email)),
        subject=REPLY_SUBJECT, html=html, text=text,
        # A reply in a conversation: no tracking pixel, no unsubscribe headers.
        transactional=True, tracking=False,
        data={**reply_data(thread), **command.data},
        sender=command.sender or account.email, thread_id=thread.id,
        in_reply_to=thread.last_message_id, references=thread.references,
        **{k: getattr(command, k) for k in ("send_at", "delay_seconds", "local_time",
                                            "best_hour", "window")})
