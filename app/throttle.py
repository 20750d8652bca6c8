"""Failed credential checks (API tokens, webhook signatures) are throttled per client: after
MAX_FAILURES in WINDOW seconds, that address gets 429 with Retry-After until the window
moves on. Kept in the web process's memory (each process throttles its own share); one
Throttle per app (app.Context.throttle)."""
from __future__ import annotations

import threading
import time
from collections import deque

from flask import request

from scheduler.errors import DomainError

MAX_FAILURES = 20
WINDOW = 60.0
MAX_CLIENTS = 10_000


class Throttled(DomainError):
    """Too many failed checks from this client (429)."""

    status = 429
    code = "too_many_failures"


class Throttle:
    """The failures of each client address, for one app."""

    def __init__(self):
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def check(self) -> None:
        """Throttled if this client failed too often lately (call before checking)."""
        now = time.monotonic()
        with self._lock:
            seen = self._failures.get(_client())
            while seen and seen[0] < now - WINDOW:
                seen.popleft()
            if seen and len(seen) >= MAX_FAILURES:
                wait = int(seen[0] + WINDOW - now) + 1
                raise Throttled(f"too many failed credential checks from this address; "
                                f"try again in {wait} s", retry_after=wait)

    def failed(self) -> None:
        """Count one failed check for this client."""
        with self._lock:
            if len(self._failures) >= MAX_CLIENTS and _client() not in self._failures:
                self._failures.pop(next(iter(self._failures)))  # forget the oldest
            self._failures.setdefault(_client(), deque(maxlen=MAX_FAILURES)).append(
                time.monotonic())


def _client() -> str:
    return request.remote_addr or "?"
