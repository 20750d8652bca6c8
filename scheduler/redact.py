"""Secrets never reach a log line, at any level: access, refresh and ID tokens, API tokens,
client secrets, webhook secrets and OAuth codes are replaced by `[redacted]` in every
formatted record, tracebacks included (libraries log request URLs and bodies at DEBUG)."""
from __future__ import annotations

import logging
import re

_PATTERNS = [
    # Authorization headers, and the tokens by their known shapes.
    re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"),
    re.compile(r"ya29\.[\w.\-]+"),                 # Google access tokens
    re.compile(r"1//[\w.\-]+"),                    # Google refresh tokens
    re.compile(r"eyJ[\w\-]+\.[\w\-]+\.[\w\-]*"),   # JWTs (ID tokens)
    re.compile(r"\bmr_[\w\-]{20,}"),               # mailrelease API tokens
    re.compile(r"\bwhsec_[0-9a-f]+"),              # webhook secrets
    # name=value and "name": "value" for the fields that hold secrets.
    re.compile(r"(?i)((?:access_token|refresh_token|id_token|client_secret|code|"
               r"code_verifier|token|secret|password)[\"']?\s*[:=]\s*[\"']?)"
               r"(?!\[redacted\])[^\s&'\",;)}\]]+"),
]
MASK = "[redacted]"


def redact(text: str) -> str:
    """`text` with every secret it shows replaced by MASK."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A Formatter whose output has gone through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
