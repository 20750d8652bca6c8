"""Everything that talks to Google: OAuth, the Gmail API, and MIME building.

This package imports nothing else of mailrelease, so it can be tested and reused alone.
"""
from gmail_client.errors import (
    AmbiguousSendError,
    DailyLimitReached,
    GmailError,
    PermanentGmailError,
    ReconnectNeeded,
    TransientGmailError,
)

__all__ = [
    "AmbiguousSendError",
    "DailyLimitReached",
    "GmailError",
    "PermanentGmailError",
    "ReconnectNeeded",
    "TransientGmailError",
]
