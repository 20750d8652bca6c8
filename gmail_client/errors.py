"""A small exception hierarchy that every Gmail or OAuth failure is mapped into.

The release engine decides what to do by class alone: retry later, hold, reconcile, or fail.
"""
from __future__ import annotations

import datetime as dt
import json
import re

from googleapiclient.errors import HttpError


class GmailError(Exception):
    """Base class: `status` is Google's HTTP status (0 when none), `reason` its short reason."""

    def __init__(self, message: str, *, status: int = 0, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason


class TransientGmailError(GmailError):
    """Worth retrying later; `retry_after` seconds when Google said how long to wait."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "",
                 retry_after: float | None = None):
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after


class AmbiguousSendError(TransientGmailError):
    """The request may have reached Gmail (timeout, reset): reconcile before sending again."""


class DailyLimitReached(GmailError):
    """The account's daily sending limit is reached; `retry_at` is when Google says it resets."""

    def __init__(self, message: str, *, status: int = 429, reason: str = "dailyLimitExceeded",
                 retry_at: dt.datetime | None = None):
        super().__init__(message, status=status, reason=reason)
        self.retry_at = retry_at


class PermanentGmailError(GmailError):
    """Retrying cannot help (invalid recipient, missing scope, malformed message)."""


class HistoryExpired(GmailError):
    """users.history.list no longer reaches back to the given history id (404)."""


class ReconnectNeeded(GmailError):
    """The grant was revoked or expired: the user must sign in again."""


_TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}
_RETRY_AFTER_TEXT = re.compile(r"Retry after (\S+)")


def _error_details(exc: HttpError) -> tuple[str, str]:
    """Return (message, reason) from Google's JSON error body, tolerating other bodies."""
    message, reason = exc._get_reason() or "", ""
    try:
        body = json.loads(exc.content.decode("utf-8"))
        err = body.get("error", {})
        if isinstance(err, dict):
            message = err.get("message", message)
            errors = err.get("errors") or []
            if errors:
                reason = errors[0].get("reason", "")
            reason = reason or err.get("status", "")
        elif isinstance(err, str):
            reason = err
            message = body.get("error_description", message)
    except (ValueError, AttributeError):
        pass
    return message, reason


def _retry_after_seconds(exc: HttpError) -> float | None:
    value = exc.resp.get("retry-after") if exc.resp is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime
            when = parsedate_to_datetime(value)
            return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _parse_retry_at(message: str) -> dt.datetime | None:
    match = _RETRY_AFTER_TEXT.search(message)
    if not match:
        return None
    try:
        when = dt.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def from_http_error(exc: HttpError) -> GmailError:
    """Map a google-api-python-client HttpError to our hierarchy."""
    status = int(exc.resp.status) if exc.resp is not None else 0
    message, reason = _error_details(exc)
    lowered = message.lower()
    if (status == 403 and reason == "dailyLimitExceeded") or (
        status == 429 and "mail sending" in lowered
    ):
        return DailyLimitReached(message, status=status, reason=reason or "dailyLimitExceeded",
                                 retry_at=_parse_retry_at(message))
    if status == 401:
        return ReconnectNeeded(message, status=status, reason=reason or "authError")
    if status == 403 and reason in ("rateLimitExceeded", "userRateLimitExceeded"):
        return TransientGmailError(message, status=status, reason=reason,
                                   retry_after=_retry_after_seconds(exc))
    if status in _TRANSIENT_STATUSES:
        return TransientGmailError(message, status=status, reason=reason,
                                   retry_after=_retry_after_seconds(exc))
    return PermanentGmailError(message, status=status, reason=reason)
