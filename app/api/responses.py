"""What the API answers, as models: the OpenAPI document's response schemas come from
these, and under test every answer is checked against the one its route declares (an
undocumented field, status or type fails the test that met it)."""
from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from scheduler.delivery import replies
from scheduler.store.models import MESSAGE_STATUSES

Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Status = Literal[tuple(MESSAGE_STATUSES)]  # type: ignore[valid-type]


class Answer(BaseModel):
    """A response body: every field documented, nothing else."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorDetail(Answer):
    code: str
    message: str
    field: str | None = None


class Error(Answer):
    """The contract's error body."""

    error: ErrorDetail


T = TypeVar("T")


class Page(Answer, Generic[T]):
    """A list: `items`, and `next_cursor` for the next page (null on the last)."""

    items: list[T]
    next_cursor: str | None


class Event(Answer):
    type: str
    at: Time
    detail: dict[str, Any] | None


class AttachmentRef(Answer):
    """A file a message, template or campaign carries (see AttachmentSpec)."""

    file_id: int | None = None
    file_field: str | None = None
    url: str | None = None
    filename: str | None = None
    content_type: str | None = None
    size: int | None = None
    cid: str | None = None


class StoredFile(Answer):
    """An uploaded file (POST /files): attach it by `id`."""

    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: Time | None


class Message(Answer):
    """A queued, sent or ended message, with its whole timeline."""

    id: str
    status: Status
    to: str
    sender: str = Field(alias="from")
    reply_to: str | None
    cc: list[str]
    bcc: list[str]
    attachments: list[AttachmentRef]
    subject: str | None
    release_at: Time | None
    sent_at: Time | None
    gmail_message_id: str | None
    thread_id: str | None
    message_id_header: str | None
    attempts: int
    error: str | None
    hold_kind: str | None
    hold_until: Time | None
    lease_until: Time | None
    cancellable: bool
    template_id: int | None
    contact_id: int | None
    transactional: bool
    tracking: bool
    opens: int
    clicks: int
    machine_opens: int
    machine_clicks: int
    created_at: Time
    events: list[Event]


class Source(Answer):
    name: str
    url: str
    timeout_ms: int | None = None
    cache_seconds: int | None = None
    fallback: Any = None


class Template(Answer):
    id: int
    name: str
    subject: str
    html: str
    text: str | None
    amp: str | None
    sources: list[Source]
    transactional: bool
    tracking: bool
    kind: Literal["email", "reply"]
    origin: str | None
    reply_to: str | None
    cc: list[str]
    bcc: list[str]
    attachments: list[AttachmentRef]
    created_at: Time
    updated_at: Time


class DraftTemplate(Template):
    """A template made of a Gmail draft, with the placeholders it uses."""

    placeholders: list[str]


class BestHour(Answer):
    at: Time | None
    reason: str


class Preview(Answer):
    """Every part rendered for one recipient (send-time content fetched)."""

    subject: str
    html: str
    text: str | None
    amp: str | None
    data: dict[str, Any]
    sources: list[dict[str, Any]]
    # What mail clients will do with it: clipping past about 102 KB, links that are not
    # absolute, images without alt text.
    warnings: list[str] = []
    best_hour: BestHour | None = None


# The thread as the domain reads it (scheduler.delivery.replies.Thread), field for field.
Thread = create_model("Thread", __base__=Answer, __doc__="A Gmail thread of the mailbox.",
                      **{name: (kind, ...) for name, kind in
                         get_type_hints(replies.Thread).items()})


class ReplyPreview(Preview):
    to: str
    thread: Thread


class ThreadPage(Page[Thread]):
    account: str


class Starter(Answer):
    key: str
    name: str
    description: str
    subject: str
    html: str | None
    text: str | None
    amp: str | None
    transactional: bool
    kind: str
    sources: list[dict[str, Any]]
    sample_data: dict[str, Any]


class Draft(Answer):
    id: str
    subject: str | None
    placeholders: list[str]


class Contact(Answer):
    id: int
    email: str
    name: str | None
    timezone: str | None
    attributes: dict[str, Any]
    subscription: Literal["subscribed", "unsubscribed", "bounced"]
    created_at: Time
    updated_at: Time


class Rejected(Answer):
    row: int | None = None
    email: str | None = None
    error: str


class Merged(Answer):
    row: int
    same_as_row: int
    email: str


class ImportReport(Answer):
    imported: int
    updated: int
    rejected: list[Rejected]
    merged: list[Merged] = []


class Segment(Answer):
    id: int
    name: str
    conditions: list[dict[str, Any]]
    created_at: Time
    matching: int
    subscribed: int


class ContactsAdded(ImportReport):
    items: list[Contact]


class EventAnswer(Answer):
    """What an event did, or (accepted with Prefer: respond-async) that it is pending."""

    event_id: int
    status: Literal["done", "pending"] = "done"
    messages: list[str] = []
    cancelled: list[str] = []
    error: str | None = None  # an accepted event whose rules could not run: why


class EventOutcome(EventAnswer):
    id: str
    name: str
    email: str
    received_at: Time


class BatchItem(Answer):
    """One event of a batch: its answer, or why it was refused (`error`, and its HTTP
    status)."""

    index: int
    id: str | None = None
    status_code: int
    replayed: bool = False
    answer: EventAnswer | None = None
    error: ErrorDetail | None = None


class BatchAnswer(Answer):
    items: list[BatchItem]


class WebhookSecret(Answer):
    secret: str
    team: int
    previous_valid_until: Time | None
    header: str | None = None


class Outcomes(Answer):
    """How many were queued and sent, and how many people opened, clicked, replied,
    bounced and unsubscribed (machine opens and clicks left out); rates over sent."""

    queued: int
    sent: int
    opened: int
    clicked: int
    replied: int
    bounced: int
    unsubscribed: int
    rates: dict[str, float | None]


class RuleStats(Outcomes):
    cancelled: int


class Guard(Answer):
    """The sender guard's view of a campaign, rule or account: its pause (if any) and
    its last sends with their hard bounces and complaints (unsubscribes)."""

    paused_at: Time | None
    paused_reason: str | None
    sends: int
    hard_bounces: int
    complaints: int


class Resumed(Answer):
    released: int


class Rule(Answer):
    id: int
    name: str
    event: str
    conditions: list[dict[str, Any]]
    template_id: int | None
    delay_seconds: float
    timing: dict[str, Any] | None
    data: dict[str, Any] | None
    cancel_on: list[str]
    frequency_cap: dict[str, Any] | None
    active: bool
    created_at: Time
    stats: RuleStats | None
    guard: Guard | None = None


class Schedule(Answer):
    id: int
    name: str
    cron: str
    timezone: str
    template_id: int | None
    to: str
    data: dict[str, Any]
    active: bool
    state: Literal["active", "paused", "stopped"]
    stop_reason: str | None
    next_at: Time | None
    occurrences: int
    catch_up: Literal["latest", "all", "hold"]
    created_at: Time


class CampaignVariant(Answer):
    key: str
    weight: float
    template_id: int | None


class VariantStats(Answer):
    queued: int
    sent: int
    opened: int
    clicked: int
    replied: int
    rates: dict[str, float | None]


class Campaign(Answer):
    id: int
    name: str
    status: str
    variants: list[CampaignVariant]
    audience: Any
    ab: dict[str, Any] | None
    counts: dict[str, int]
    decide_at: Time | None
    winner: str | None
    decision: dict[str, Any] | None
    reply_to: str | None
    cc: list[str]
    bcc: list[str]
    attachments: list[AttachmentRef]
    created_at: Time
    stats: dict[str, VariantStats] | None = None
    warnings: list[str] = []
    guard: Guard | None = None


class SendingAccount(Answer):
    id: int
    email: str
    sent_24h: int
    daily_cap: int
    warmup_ceiling: int | None
    warmup_started_at: Time | None
    paused_reason: str | None
    paused_at: Time | None


class SendingDomain(Answer):
    domain: str
    sent_24h: int
    to_personal_gmail_24h: int
    threshold: int
    bulk_since: Time | None
    warning: str | None


class Sending(Answer):
    """Sends over the last 24 h per account and per sending domain, against the caps and
    Gmail's bulk-sender threshold."""

    accounts: list[SendingAccount]
    domains: list[SendingDomain]


class CampaignPreview(Sending):
    audience: int
    skipped_unsubscribed: int
    to_personal_gmail: int
    warnings: list[str]


class Team(Answer):
    id: int
    name: str
    tracking: bool
    role: Literal["owner", "member", "viewer"]


class Member(Answer):
    user_id: int
    email: str
    name: str | None
    role: Literal["owner", "member", "viewer"]
    personal_team: bool


class RoleChanged(Answer):
    user_id: int
    role: Literal["owner", "member", "viewer"]


class Invitation(Answer):
    id: int
    email: str
    role: Literal["owner", "member", "viewer"]
    created_at: Time
    message_id: str | None = None


class Alias(Answer):
    model_config = ConfigDict(extra="allow")
    email: str


class Account(Answer):
    id: int
    email: str
    state: Literal["healthy", "needs reconnecting", "disconnected", "daily limit reached"]
    reason: str | None
    sent_24h: int
    daily_cap: int
    limited_until: Time | None
    warmup_ceiling: int | None
    paused_reason: str | None
    watch_expires_at: Time | None
    watch_error: str | None
    scopes: list[str]
    own: bool
    shared: bool
    send_as: list[Alias]


class Shared(Answer):
    id: int
    email: str
    shared: bool


class AuditEntry(Answer):
    id: int
    at: Time
    user: str | None
    via: str
    action: str
    target: str | None
    detail: dict[str, Any] | None


class CampaignOutcomes(Outcomes):
    id: int
    name: str
    status: str
    winner: str | None
    variants: dict[str, VariantStats]
    cancelled: int | None = None


class Stats(Answer):
    """Outcomes per local day, and per campaign."""

    days: list[str]
    series: dict[str, list[int]]
    totals: dict[str, int]
    timezone: str
    campaigns: list[CampaignOutcomes]
