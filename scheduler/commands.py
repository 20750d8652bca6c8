"""Every request the domain takes, as typed commands (pydantic models).

The API parses request bodies into these, and so does the rest of the product: a rule, a
schedule, a campaign, an invitation and a thread reply make the same `NewMessage` a client
sends, and say who made it with an `Origin`. Limits (lengths, ranges, list sizes) are part
of the types, so the OpenAPI document generated from them states them too. What needs the
database or a template compiler (does the template exist, does the Jinja parse, is the zone
known) stays with the domain functions that take these commands.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from scheduler.errors import InvalidInput
from scheduler.typed import (
    Address,
    Aware,
    Clock,
    Command,
    Data,
    Date,
    Email,
    GmailId,
    Id,
    Json,
    Line,
    Name,
    Part,
    Zone,
)

MAX_DELAY_SECONDS = 5 * 366 * 24 * 3600
MAX_CAP_SECONDS = 366 * 24 * 3600
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
EventName = Annotated[Line, Field(min_length=1, max_length=100, pattern=r"\S")]
TIMING = ("send_at", "delay_seconds", "local_time", "best_hour", "window")
Seconds = Annotated[float, Field(ge=0, le=MAX_DELAY_SECONDS)]


# -- timing ------------------------------------------------------------------------------

class LocalTime(Command):
    """A wall-clock time in the recipient's zone (`date` optional: the next one)."""

    time: Clock
    date: Date | None = None
    fallback_timezone: Zone | None = None


class BestHour(Command):
    """The hour the recipient engages most, in their zone (or the fallback's)."""

    fallback_timezone: Zone | None = None


class Window(Command):
    """Release only within these hours on these days, in the recipient's zone."""

    days: Annotated[list[Day], Field(min_length=1, max_length=7)] = ["mon", "tue", "wed",
                                                                     "thu", "fri"]
    start: Clock = "09:00"
    end: Clock = "17:00"
    fallback_timezone: Zone | None = None


class Timing(Command):
    """One of send_at | delay_seconds | local_time | best_hour (none = now), and an
    optional window the time is moved into."""

    send_at: Aware | None = None
    delay_seconds: Seconds | None = None
    local_time: LocalTime | None = None
    best_hour: Literal[True] | BestHour | None = None
    window: Window | None = None

    @model_validator(mode="after")
    def _one_timing(self):
        given = [k for k in ("send_at", "delay_seconds", "local_time", "best_hour")
                 if getattr(self, k, None) is not None]
        if len(given) > 1:
            raise InvalidInput(f"give only one of {', '.join(given)}", field=given[1])
        return self

    def timing(self) -> dict:
        """The timing fields given, as `timing.plan` reads them."""
        return self.model_dump(include=set(TIMING), exclude_none=True)


# -- messages ----------------------------------------------------------------------------

class Origin(Command):
    """Who makes a message besides a person: the machine's decision it carries, and the
    key that makes it once (unique in the database)."""

    kind: Literal["api", "form", "rule", "schedule", "campaign", "invitation", "reply"]
    key: str | None = None  # origin_key: one message per decision
    rule_id: int | None = None
    schedule_id: int | None = None
    hold: tuple[str, str] | None = None  # (kind, reason): held for a person
    note: dict | None = None  # goes on the first timeline entry


API = Origin(kind="api")


class Content(Command):
    """Inline content (without template_id)."""

    subject: Part | None = None
    html: Part | None = None
    text: Part | None = None
    amp: Part | None = None


MAX_COPIES = 20
Copies = Annotated[list[Address], Field(max_length=MAX_COPIES)]


class Headers(Command):
    """Reply-To, Cc and Bcc, each address checked like `to` (a template's are the default
    of the messages made from it; a message's own replace them)."""

    reply_to: Address | None = None
    cc: Copies | None = None
    bcc: Copies | None = None


HEADER_FIELDS = ("reply_to", "cc", "bcc")


def stored_header(value):
    """A Reply-To or a list of copies as a row keeps it: a list, or None for none."""
    return (list(value) if isinstance(value, (list, tuple)) else value) or None


MAX_ATTACHMENTS = 20
# 25 MB of files in base64, and room for the JSON around them.
MAX_BASE64_CHARS = 4 * (25 * 1024 * 1024 + 2) // 3
MIME_TYPE = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
FIELD_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,3}$"


class AttachmentSpec(Command):
    """One file of `attachments`, from one of: its bytes (`content_base64`, with
    `filename`), a stored file (`file_id`, from POST /files), a field of the recipient's
    data or contact attributes that names a stored file by id or file name
    (`file_field`), or a URL on an allowed host fetched at send time (`url`, a template
    like a source's). `cid` makes it an inline image, shown where the HTML says
    `<img src="cid:...">`. Exactly one source is checked by content.attachments, which
    names the entry."""

    filename: Annotated[Line, Field(min_length=1, max_length=255)] | None = None
    content_type: Annotated[str, Field(pattern=MIME_TYPE, max_length=255)] | None = None
    content_base64: Annotated[str, Field(max_length=MAX_BASE64_CHARS)] | None = None
    file_id: Id | None = None
    file_field: Annotated[str, Field(pattern=FIELD_NAME, max_length=200)] | None = None
    url: Annotated[Line, Field(min_length=1, max_length=2000)] | None = None
    cid: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")] | None = None


class NewFile(Command):
    """POST /files: a file to attach by id later (the same bytes, name and type twice
    are one file)."""

    filename: Annotated[Line, Field(min_length=1, max_length=255)]
    content_type: Annotated[str, Field(pattern=MIME_TYPE, max_length=255)] | None = None
    content_base64: Annotated[str, Field(min_length=1, max_length=MAX_BASE64_CHARS)]


# A request that carries files: 25 MB in base64, and the rest of the request.
MAX_REQUEST_WITH_FILES = MAX_BASE64_CHARS + 2 * 1024 * 1024


class Files(Command):
    """Attachments and inline images (a template's are the default of the messages made
    from it; a message's own replace them)."""

    attachments: Annotated[list[AttachmentSpec], Field(max_length=MAX_ATTACHMENTS)] | None = None


class NewMessage(Timing, Content, Headers, Files):
    """POST /messages: one personalized message to one address."""

    to: Address
    template_id: Id | None = None
    data: Data = {}
    sender: Address | None = Field(None, alias="from")
    thread_id: Line | None = None
    in_reply_to: Line | None = None
    references: Line | None = None
    draft: bool = False
    transactional: bool | None = None
    tracking: bool | None = None

    @model_validator(mode="after")
    def _one_source(self):
        inline = [k for k in ("subject", "html", "text", "amp") if getattr(self, k)]
        if self.template_id is not None and inline:
            raise InvalidInput(f"send either template_id or inline content, not both "
                               f"({inline[0]})", field=inline[0])
        if self.template_id is None:
            for name in ("subject", "html"):
                if not (getattr(self, name) or "").strip():
                    raise InvalidInput(f"{name} is required (or give template_id)",
                                       field=name)
        if self.in_reply_to and not self.thread_id:
            raise InvalidInput("in_reply_to needs thread_id (the Gmail thread to reply in)",
                               field="thread_id")
        return self


class MessageChange(Timing):
    """PATCH /messages/{id}: what may change while it is not yet sending."""

    to: Address | None = None
    sender: Address | None = Field(None, alias="from")
    subject: Part | None = None
    html: Part | None = None
    text: Part | None = None
    amp: Part | None = None
    data: Data | None = None
    draft: bool | None = None

    @model_validator(mode="after")
    def _something(self):
        if not self.model_fields_set:
            raise InvalidInput("the body must name at least one field to change")
        for name in ("subject", "html"):
            if name in self.model_fields_set and not (getattr(self, name) or "").strip():
                raise InvalidInput(f"{name} must not be empty", field=name)
        return self


# -- templates ---------------------------------------------------------------------------

class Source(Command):
    """Send-time content: JSON fetched from `url` when the message is released."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    url: Annotated[Line, Field(min_length=1, max_length=2000)]
    timeout_ms: Annotated[int, Field(ge=1, le=60_000)] | None = None
    cache_seconds: Annotated[int, Field(ge=0, le=86_400)] | None = None
    fallback: Json = None


class NewTemplate(Headers, Files):
    """POST /templates (or PUT: fields left out keep their value)."""

    name: Name | None = None
    subject: Part | None = None
    html: Part | None = None
    text: Part | None = None
    amp: Part | None = None
    sources: Annotated[list[Source], Field(max_length=10)] | None = None
    transactional: bool | None = None
    tracking: bool | None = None
    kind: Literal["email", "reply"] | None = None
    starter: Annotated[Line, Field(max_length=100)] | None = None


class TemplateFromDraft(Command):
    """POST /templates/from-draft."""

    draft_id: GmailId
    name: Name | None = None
    account: Address | None = None


class PreviewData(Command):
    """POST /templates/{id}/preview: a contact's address and/or data; live images are
    drawn as of `at` (default: when the preview's image is fetched)."""

    to: Address | None = None
    data: Data = {}
    at: Aware | None = None


class PreviewContent(NewTemplate):
    """POST /templates/preview: unsaved template fields plus `to`/`data`/`at`."""

    to: Address | None = None
    data: Data = {}
    at: Aware | None = None


# -- contacts ----------------------------------------------------------------------------

class NewContact(Command):
    """One contact of POST /contacts."""

    email: Email
    name: Annotated[Line, Field(max_length=300)] | None = None
    timezone: Zone | None = None
    attributes: Data = {}
    subscription: Literal["subscribed", "unsubscribed", "bounced"] | None = None


class ContactChange(Command):
    """PATCH /contacts/{id}: the fields given change (attributes are replaced)."""

    name: Annotated[Line, Field(max_length=300)] | None = None
    timezone: Zone | None = None
    attributes: Data | None = None
    subscription: Literal["subscribed", "unsubscribed", "bounced"] | None = None


# -- events and rules --------------------------------------------------------------------

def _data_or_contact(value: str) -> str:
    if not value.startswith(("data.", "contact.")):
        raise ValueError("must start with data. or contact.")
    return value


class Condition(Command):
    """A test on the event's data (`data.x`) or the contact (`contact.x`)."""

    field: Annotated[Line, Field(max_length=200), AfterValidator(_data_or_contact),
                     WithJsonSchema({"type": "string", "pattern": r"^(data|contact)\.",
                                     "maxLength": 200})]
    op: Literal["equals", "not_equals", "exists", "contains", "greater", "less"]
    value: Json = None

    @model_validator(mode="after")
    def _value(self):
        if self.op != "exists" and "value" not in self.model_fields_set:
            raise ValueError(f"value is required for {self.op}")
        return self


Conditions = Annotated[list[Condition], Field(max_length=50)]


class FrequencyCap(Command):
    """At most `max` messages from this rule per contact within `seconds`."""

    max: Annotated[int, Field(ge=1, le=10_000)]
    seconds: Annotated[float, Field(gt=0, le=MAX_CAP_SECONDS)]


class NewRule(Command):
    """POST /rules: when event `event` arrives (and its conditions hold), queue the
    template to the event's address."""

    name: Name | None = None
    event: EventName
    conditions: Conditions = []
    template_id: Id
    delay_seconds: Annotated[float, Field(ge=0, le=MAX_CAP_SECONDS)] = 0
    cancel_on: Annotated[list[EventName], Field(max_length=20)] = []
    frequency_cap: FrequencyCap | None = None
    active: bool = True
    local_time: LocalTime | None = None
    best_hour: Literal[True] | BestHour | None = None
    window: Window | None = None
    data: Data | None = None


class RuleSeed(Command):
    """POST /rules {"seed": key}: add a ready-made set of rules (and their templates)."""

    seed: Annotated[Line, Field(min_length=1, max_length=100)]


class NewEvent(Command):
    """POST /events."""

    id: Annotated[Line, Field(min_length=1, max_length=200, pattern=r"\S")]
    name: EventName
    email: Email
    occurred_at: Aware | None = None
    data: Data | None = None


class NewEventBatch(Command):
    """POST /events/batch: events as POST /events takes them, each checked on its own."""

    events: Annotated[list[Json], Field(min_length=1, max_length=500)]


# -- schedules and campaigns -------------------------------------------------------------

class NewSchedule(Command):
    """POST /schedules: a template sent to `to` at every cron occurrence."""

    name: Name | None = None
    cron: Annotated[Line, Field(min_length=1, max_length=200, pattern=r"\S")]
    timezone: Zone = "UTC"
    template_id: Id
    to: Address
    data: Data = {}
    catch_up: Literal["latest", "all", "hold"] = "latest"


class Variant(Command):
    """One version of a campaign: its own template, or the campaign's with another
    subject or HTML."""

    key: Annotated[Line, Field(min_length=1, max_length=20)] | None = None
    weight: Annotated[float, Field(gt=0, le=1000)] = 1
    template_id: Id | None = None
    subject: Part | None = None
    html: Part | None = None


class FollowUp(Command):
    """A step sent `after_seconds` after the previous one unless they replied in its
    thread ("reply"), wrote to us in any thread ("person"), anyone at their company
    domain wrote to us ("domain"; a free-mail domain counts as "person"), or they clicked
    ("click")."""

    after_seconds: Annotated[float, Field(gt=0, le=MAX_DELAY_SECONDS)]
    unless: Literal["reply", "person", "domain", "click"] = "reply"
    # "postpone": an out-of-office answer with a return date moves this step to that
    # date (at most 30 days on); "ignore": it goes at its time.
    out_of_office: Literal["ignore", "postpone"] = "ignore"
    template_id: Id | None = None
    subject: Part | None = None
    html: Part | None = None


class ABTest(Command):
    """Send the variants to a test group, then the winner by `metric` to the rest."""

    test_fraction: Annotated[float, Field(gt=0, le=1)] = 0.2
    metric: Literal["open", "click", "reply"] = "open"
    decide_after_seconds: Annotated[float, Field(ge=0, le=MAX_CAP_SECONDS)] = 4 * 3600
    min_per_variant: Annotated[int, Field(ge=1, le=100_000)] = 20


class ContactIds(Command):
    contact_ids: Annotated[list[Id], Field(min_length=1, max_length=100_000)]


class ContactFilter(Command):
    filter: Conditions


class SegmentAudience(Command):
    """A saved segment's contacts, as they are when the campaign is queued."""

    segment_id: Id


class NewSegment(Command):
    """A saved audience: a name and conditions on contact fields (contact.plan, ...)."""

    name: Name
    conditions: Conditions = []


class ScheduleChange(Command):
    """Editing a recurring send: any of its name, cron, zone, recipient, data, catch-up."""

    name: Name | None = None
    cron: Annotated[Line, Field(min_length=1, max_length=200, pattern=r"\S")] | None = None
    timezone: Zone | None = None
    to: Address | None = None
    data: Data | None = None
    catch_up: Literal["latest", "all", "hold"] | None = None


class NewCampaign(Headers, Files):
    """POST /campaigns: a mail merge to all contacts, a list of ids or a filter."""

    name: Name | None = None
    template_id: Id | None = None
    variants: Annotated[list[Variant], Field(min_length=1, max_length=10)] | None = None
    audience: Literal["all"] | ContactIds | ContactFilter | SegmentAudience = "all"
    ab: ABTest | None = None
    send_at: Aware | None = None
    delay_seconds: Seconds | None = None
    local_time: LocalTime | None = None
    window: Window | None = None
    sender: Address | None = Field(None, alias="from")
    data: Data = {}
    follow_ups: Annotated[list[FollowUp], Field(max_length=5)] = []


# -- teams and threads -------------------------------------------------------------------

Role = Literal["owner", "member", "viewer"]


class TeamChange(Command):
    """PATCH /team (owners)."""

    name: Name | None = None
    tracking: bool | None = None


class MemberChange(Command):
    """PATCH /team/members/{id} (owners)."""

    role: Role


class NewInvitation(Command):
    """POST /team/invitations (owners)."""

    email: Email
    role: Role = "member"
    send_email: bool = True


class ThreadReply(Timing):
    """POST /threads/{id}/reply: a saved reply (template_id) or html (+ text)."""

    account_id: Id | None = None
    template_id: Id | None = None
    html: Part | None = None
    text: Part | None = None
    data: Data = {}
    sender: Address | None = Field(None, alias="from")

    @model_validator(mode="after")
    def _one_source(self):
        if self.template_id is not None and (self.html or self.text):
            raise InvalidInput("send either template_id or html, not both", field="html")
        if self.template_id is None and not (self.html or "").strip():
            raise InvalidInput("choose a saved reply (template_id) or write html",
                               field="html")
        return self


__all__ = [name for name, value in list(globals().items())
           if isinstance(value, type) and issubclass(value, Command)] + ["API"]
