"""The event object Google posts to an add-on's HTTP endpoint, read into types (the parts
the add-on uses; anything else Google adds is ignored)."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scheduler.timing.release_at import zone_or_utc

MAX_INPUT = 100_000


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Zone(_Part):
    id: str = "UTC"
    offset: int = 0  # milliseconds


class Common(_Part):
    userLocale: str = "en"
    hostApp: str = "GMAIL"
    platform: str = "WEB"
    timeZone: _Zone = Field(default_factory=_Zone)
    formInputs: dict[str, dict] = {}
    parameters: dict[str, str] = {}


class Authorization(_Part):
    userOAuthToken: str | None = None
    userIdToken: str | None = None
    systemIdToken: str | None = None


class GmailContext(_Part):
    messageId: str | None = None
    threadId: str | None = None
    accessToken: str | None = None
    toRecipients: list[str] = []
    ccRecipients: list[str] = []
    bccRecipients: list[str] = []


class AddonEvent(_Part):
    """One event: the common part, the tokens, and Gmail's context (an open message, or a
    draft's recipients)."""

    commonEventObject: Common = Field(default_factory=Common)
    authorizationEventObject: Authorization = Field(default_factory=Authorization)
    gmail: GmailContext = Field(default_factory=GmailContext)

    @property
    def zone(self) -> dt.tzinfo:
        """The user's time zone (Gmail's setting), UTC when unknown."""
        return zone_or_utc(self.commonEventObject.timeZone.id)

    def parameter(self, name: str) -> str | None:
        return self.commonEventObject.parameters.get(name)

    def text(self, name: str) -> str:
        """A text input's (or a selection's first) value, stripped; '' when absent."""
        found = (self.commonEventObject.formInputs.get(name) or {}).get("stringInputs")
        values = found.get("value") if isinstance(found, dict) else None
        if not isinstance(values, list) or not values:
            return ""
        return str(values[0]).strip()[:MAX_INPUT]

    def moment(self, name: str) -> dt.datetime | None:
        """A date-time picker's value, or None when it was left empty."""
        found = (self.commonEventObject.formInputs.get(name) or {}).get("dateTimeInput")
        if not isinstance(found, dict) or found.get("msSinceEpoch") in (None, ""):
            return None
        try:
            return dt.datetime.fromtimestamp(int(found["msSinceEpoch"]) / 1000, dt.UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            return None


def read_event(body: object) -> AddonEvent | None:
    """The event in a request body, or None when it is not one."""
    if not isinstance(body, dict):
        return None
    try:
        return AddonEvent.model_validate(body)
    except ValidationError:
        return None
