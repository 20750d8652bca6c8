"""RFC 5322 messages built with the standard `email` package.

Parts of multipart/alternative go in the order Gmail requires: text/plain, then
text/x-amp-html when there is one, then text/html (the last part is the preferred one).
"""
from __future__ import annotations

import datetime as dt
import email.policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

# SMTP policy: CRLF line ends, RFC 2047 encoding of non-ASCII headers, and a refusal of
# header values containing CR or LF (so values can never inject headers).
_POLICY = email.policy.SMTP.clone(max_line_length=998)


def make_message_id(local_part: str, domain: str) -> str:
    """A deterministic Message-ID, so a resend after a crash can be recognised in Gmail."""
    return f"<{local_part}@{domain}>"


def build_message(*, sender: Address, to: Address, subject: str, html: str,
                  text: str, amp: str | None = None, message_id: str,
                  date: dt.datetime | None = None, in_reply_to: str | None = None,
                  references: str | None = None,
                  extra_headers: dict[str, str] | None = None) -> bytes:
    """Return the message as bytes ready for Gmail's `raw` field."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or dt.datetime.now(dt.timezone.utc))
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = references or in_reply_to
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(text, subtype="plain", charset="utf-8")
    if amp:
        msg.add_alternative(amp, subtype="x-amp-html", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    return msg.as_bytes()
