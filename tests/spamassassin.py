"""Scoring mail with Debian's SpamAssassin (local tests: this machine has no network for
DNS or URI blocklists), and the plain twin a message is compared with."""
from __future__ import annotations

import email
import email.policy
import re
import subprocess
from email.message import EmailMessage


def score(raw: bytes) -> tuple[float, list[str]]:
    """SpamAssassin's local-test score and the names of the rules that hit."""
    out = subprocess.run(["spamassassin", "-L", "-t"], input=raw, capture_output=True,
                         check=True, timeout=120).stdout
    status = email.message_from_bytes(out, policy=email.policy.compat32)["X-Spam-Status"]
    text = " ".join(str(status).split())
    value = float(re.search(r"score=(-?[\d.]+)", text).group(1))
    tests = re.search(r"tests=(.*?)(?: autolearn=| version=|$)", text)
    names = (tests.group(1) if tests else "").replace(" ", "").split(",")
    return value, [t for t in names if t and t != "none"]


def plain_twin(subject: str, html: str, text: str, amp: str | None, sent) -> bytes:
    """The same rendered content (its AMP part too) as Python's EmailMessage writes it,
    with the sent message's From, To, Date and Message-ID."""
    twin = EmailMessage()
    for name in ("From", "To", "Date", "Message-ID"):
        twin[name] = sent[name]
    twin["Subject"] = subject
    twin.set_content(text)
    if amp:
        twin.add_alternative(amp, subtype="x-amp-html")
    twin.add_alternative(html, subtype="html")
    return twin.as_bytes(policy=email.policy.SMTP)
