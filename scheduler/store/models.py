"""Typed SQLAlchemy 2 models. The messages table is the queue and the only source of truth."""
from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from scheduler.store.db import utcnow
from scheduler.store.transitions import Status

# The statuses and their legal changes live in scheduler/store/transitions.py.
MESSAGE_STATUSES = tuple(str(s) for s in Status)
ACCOUNT_STATUSES = ("connected", "reconnect", "disconnected")
ROLES = ("owner", "member", "viewer")
# bounced: a hard bounce; like unsubscribed, nothing but transactional mail goes there.
SUBSCRIPTION_STATES = ("subscribed", "unsubscribed", "bounced")
# Why a message is held: each kind is released by a different thing.
HOLD_KINDS = ("missing_data", "reconnect", "daily_limit", "delivery_unknown", "too_late",
              "no_client", "account_gone", "paused")


class UTCDateTime(TypeDecorator):
    """Accepts only aware datetimes, stores UTC, and always returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: mailrelease stores aware UTC times only")
        value = value.astimezone(dt.UTC)
        # SQLite has no time zone type; UTC text sorts correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (so migrations can refer to them)."""

    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON(),
                           list[dict[str, Any]]: JSON(), list[str]: JSON()}


class Team(Base):
    """Owns messages, templates, contacts and rules. Every user has a personal team."""

    __tablename__ = "team"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Open pixels and click redirects in this team's (non-transactional) mail.
    tracking: Mapped[bool] = mapped_column(Boolean, default=True)
    # Signs webhooks (POST /events); encrypted like OAuth tokens. During a rotation the
    # previous one stays valid for a day.
    webhook_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    webhook_secret_previous: Mapped[bytes | None] = mapped_column(LargeBinary)
    webhook_rotated_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person, identified by the Google account they signed in with."""

    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    personal_team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Membership(Base):
    """A user's role in a team."""

    __tablename__ = "membership"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         primary_key=True)
    role: Mapped[str] = mapped_column(String(20), default="owner")


class GmailAccount(Base):
    """A connected Gmail mailbox; its OAuth tokens are stored encrypted (`token_blob`)."""

    __tablename__ = "gmail_account"
    __table_args__ = (CheckConstraint(_in("status", ACCOUNT_STATUSES), name="status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    token_blob: Mapped[bytes] = mapped_column(LargeBinary)
    scopes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="connected")
    status_reason: Mapped[str | None] = mapped_column(Text)
    # Gmail said the daily sending limit is reached until then.
    limited_until: Mapped[dt.datetime | None] = mapped_column()
    # Overrides the default daily cap (500 for consumer Gmail, 2,000 for Workspace).
    daily_cap: Mapped[int | None] = mapped_column(Integer)
    # Pacing: the earliest time the next send of this account may start (shared by workers).
    next_send_at: Mapped[dt.datetime | None] = mapped_column()
    # Mailbox sync (bounces, replies): Gmail's history id read up to, and when.
    history_id: Mapped[str | None] = mapped_column(String(40))
    # Gmail's sendAs addresses (aliases) of this mailbox: [{"email", "name", "default"}].
    send_as: Mapped[list[dict[str, Any]] | None] = mapped_column()
    synced_at: Mapped[dt.datetime | None] = mapped_column()
    # One worker reads the mailbox at a time (a round, or a push notification's).
    sync_lease_until: Mapped[dt.datetime | None] = mapped_column()
    # Gmail push notifications (users.watch): until when, when last tried, and why the
    # last try failed (shown on the Accounts page with the fix).
    watch_expires_at: Mapped[dt.datetime | None] = mapped_column()
    watch_checked_at: Mapped[dt.datetime | None] = mapped_column()
    watch_error: Mapped[str | None] = mapped_column(Text)
    # Failed watches in a row: the next try waits 10 min × 2^n, at most 6 h.
    watch_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Opted in to the warm-up ramp on this day (a daily ceiling that grows; see
    # scheduler/audience/guard.py).
    warmup_started_at: Mapped[dt.datetime | None] = mapped_column()
    # The sender guard paused it (hard bounces or complaints above the threshold); the
    # rates it watches count only sends after guard_since (set when a person resumes it).
    paused_at: Mapped[dt.datetime | None] = mapped_column()
    paused_reason: Mapped[str | None] = mapped_column(Text)
    guard_since: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def scope_list(self) -> list[str]:
        """Granted scopes as a list."""
        return self.scopes.split()


class AccountShare(Base):
    """An owner lets a team send from one of their Gmail accounts."""

    __tablename__ = "account_share"
    account_id: Mapped[int] = mapped_column(ForeignKey("gmail_account.id", ondelete="CASCADE"),
                                            primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"),
                                         primary_key=True)
    shared_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Invitation(Base):
    """Whoever signs in with this Google address joins the team with this role."""

    __tablename__ = "invitation"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),
                      Index("ix_invitation_email", "email"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))  # normalized, lower case
    role: Mapped[str] = mapped_column(String(20))
    invited_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[dt.datetime | None] = mapped_column()
    accepted_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class AuditEntry(Base):
    """Who changed what in a team, through the web app or the API."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_team", "team_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id",
                                                           ondelete="SET NULL"))
    via: Mapped[str] = mapped_column(String(20))  # web, api, webhook, sign-in
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None] = mapped_column()
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A Bearer token for the REST API; only its SHA-256 is stored."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class Template(Base):
    """Reusable message content: Jinja2 parts and the send-time content they fetch."""

    __tablename__ = "template"
    __table_args__ = (UniqueConstraint("team_id", "name", name="uq_template_team_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    amp: Mapped[str | None] = mapped_column(Text)
    # [{"name", "url", "timeout_ms", "cache_seconds", "fallback"}], checked at save.
    sources: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    # Transactional mail (receipts, resets) carries no unsubscribe headers or tracking.
    transactional: Mapped[bool] = mapped_column(Boolean, default=False)
    tracking: Mapped[bool] = mapped_column(Boolean, default=True)
    # "email", or "reply": a saved reply for support threads (shared by the team).
    kind: Mapped[str] = mapped_column(String(20), default="email", server_default="email")
    # Where it came from: a starter's key or "gmail-draft:<id>", for the UI.
    origin: Mapped[str | None] = mapped_column(String(200))
    # Reply-To and copies (header-ready "Name <address>" strings).
    reply_to: Mapped[str | None] = mapped_column(String(400))
    cc: Mapped[list[str] | None] = mapped_column()
    bcc: Mapped[list[str] | None] = mapped_column()
    # Files to attach: [{"file_id"} | {"file_field"} | {"url"}, with "filename",
    # "content_type", "inline" and "cid"] (see scheduler/content/attachments.py).
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column()
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Contact(Base):
    """A recipient: address, name, time zone, free attributes and a subscription state."""

    __tablename__ = "contact"
    __table_args__ = (
        UniqueConstraint("team_id", "email", name="uq_contact_team_email"),
        CheckConstraint(_in("subscription", SUBSCRIPTION_STATES), name="subscription"),
        Index("ix_contact_team_id", "team_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))  # normalized, lower case
    name: Mapped[str | None] = mapped_column(String(300))
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA name
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    subscription: Mapped[str] = mapped_column(String(20), default="subscribed")
    subscription_reason: Mapped[str | None] = mapped_column(Text)
    subscription_changed_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Rule(Base):
    """When an event arrives (and its conditions hold), queue a template for the contact."""

    __tablename__ = "rule"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(100))
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    template_id: Mapped[int] = mapped_column(ForeignKey("template.id", ondelete="CASCADE"))
    delay_seconds: Mapped[float] = mapped_column(default=0.0)
    # Instead of a delay: {"local_time": {...}} or {"best_hour": true}, and/or a "window".
    timing: Mapped[dict[str, Any] | None] = mapped_column()
    # Merged into each message's data (e.g. an incentive for a second reminder).
    data: Mapped[dict[str, Any] | None] = mapped_column()
    cancel_on: Mapped[list[str]] = mapped_column(JSON, default=list)
    frequency_cap: Mapped[dict[str, Any] | None] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The sender guard paused it (hard bounces or complaints above the threshold); the
    # rates it watches count only sends after guard_since (set when a person resumes it).
    paused_at: Mapped[dt.datetime | None] = mapped_column()
    paused_reason: Mapped[str | None] = mapped_column(Text)
    guard_since: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Event(Base):
    """An event received from the user's systems, with the answer it got (idempotency)."""

    __tablename__ = "event"
    __table_args__ = (UniqueConstraint("team_id", "external_id", name="uq_event_team_external"),
                      Index("ix_event_pending", "status", "claimed_until"),
                      Index("ix_event_team_email", "team_id", "email", "received_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(320))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column()
    response: Mapped[dict[str, Any] | None] = mapped_column()
    # "done" (its rules ran; `response` is its answer) or "pending" (accepted with
    # Prefer: respond-async, its rules still to run by whoever holds `claimed_until`).
    status: Mapped[str] = mapped_column(String(10), default="done", server_default="done")
    claimed_until: Mapped[dt.datetime | None] = mapped_column()
    # Who sent it with a token (their messages are theirs); None for a signed webhook.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))


class Schedule(Base):
    """A recurring send: a cron expression in a time zone; each occurrence is its own
    message (queued a few minutes ahead), so history and status stay per send."""

    __tablename__ = "schedule"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[int] = mapped_column(ForeignKey("template.id", ondelete="CASCADE"))
    to_addr: Mapped[str] = mapped_column(String(400))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    next_at: Mapped[dt.datetime | None] = mapped_column(index=True)  # None: no more
    # Occurrences missed by more than the maximum lateness (the workers were down):
    # "latest" sends only the most recent one, "all" sends each, "hold" holds them.
    catch_up: Mapped[str] = mapped_column(String(10), default="latest",
                                          server_default="latest")
    # active False and stopped_at None: paused (resuming picks up from then);
    # stopped_at set: ended for good, with why (a person, or its template was deleted).
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    stopped_at: Mapped[dt.datetime | None] = mapped_column()
    stop_reason: Mapped[str | None] = mapped_column(Text)
    occurrences: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OutcomeCount(Base):
    """How many messages got each outcome (sent; first human open, click, reply; bounce;
    unsubscribe) per team, campaign (0: none) and UTC hour, kept as the events are
    recorded, so that the dashboard reads a few hundred rows instead of every event."""

    __tablename__ = "outcome_count"
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"),
                                         primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class Segment(Base):
    """A saved audience: a name and conditions on contact fields (the rules' shape,
    fields starting with contact.), usable by campaigns and compose."""

    __tablename__ = "segment"
    __table_args__ = (UniqueConstraint("team_id", "name", name="uq_segment_team_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id",
                                                              ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    """A mail merge to an audience, with optional A/B variants and a decided winner."""

    __tablename__ = "campaign"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    name: Mapped[str] = mapped_column(String(200))
    # [{"key", "weight", "parts": the content copied from the template(s)}]
    variants: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    audience: Mapped[Any] = mapped_column(JSON)
    timing: Mapped[dict[str, Any] | None] = mapped_column()
    ab: Mapped[dict[str, Any] | None] = mapped_column()
    data: Mapped[dict[str, Any] | None] = mapped_column()
    from_addr: Mapped[str | None] = mapped_column(String(400))
    # Reply-To and copies (header-ready "Name <address>" strings).
    reply_to: Mapped[str | None] = mapped_column(String(400))
    cc: Mapped[list[str] | None] = mapped_column()
    bcc: Mapped[list[str] | None] = mapped_column()
    # Files to attach: [{"file_id"} | {"file_field"} | {"url"}, with "filename",
    # "content_type", "inline" and "cid"] (see scheduler/content/attachments.py).
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(20))  # testing, done
    pending: Mapped[list[int] | None] = mapped_column(JSON)  # contacts awaiting the winner
    decide_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    winner: Mapped[str | None] = mapped_column(String(20))
    decision: Mapped[dict[str, Any] | None] = mapped_column()
    counts: Mapped[dict[str, Any] | None] = mapped_column()
    # The sender guard paused it (hard bounces or complaints above the threshold); the
    # rates it watches count only sends after guard_since (set when a person resumes it).
    paused_at: Mapped[dt.datetime | None] = mapped_column()
    paused_reason: Mapped[str | None] = mapped_column(Text)
    guard_since: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StoredFile(Base):
    """An attachment's or inline image's bytes, kept once per team and content (messages,
    templates and campaigns refer to it by id, and never copy it)."""

    __tablename__ = "stored_file"
    __table_args__ = (UniqueConstraint("team_id", "sha256", "filename", "content_type",
                                       name="uq_stored_file_content"),
                      Index("ix_stored_file_team_name", "team_id", "filename"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id",
                                                              ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SendingDomain(Base):
    """A domain mail goes out from, as Gmail's bulk-sender rule sees it: once 5,000
    messages in a day went from it to personal Gmail addresses (`bulk_since`), it is a
    bulk sender for good."""

    __tablename__ = "sending_domain"
    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    bulk_since: Mapped[dt.datetime | None] = mapped_column()
    peak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    peak_at: Mapped[dt.datetime | None] = mapped_column()


class MailboxNotification(Base):
    """A Gmail push notification the app received (POST /hooks/gmail-push), kept until a
    worker has read the mailbox it names."""

    __tablename__ = "mailbox_notification"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    history_id: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A signed-in browser: the cookie carries a random id, this row says it is still valid
    (signing out ends it here, not only in the cookie). Only the id's SHA-256 is stored."""

    __tablename__ = "web_session"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class IdempotencyKey(Base):
    """A client's Idempotency-Key and the first answer it got, kept 24 h per team."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("team_id", "key", name="uq_idempotency_key_team_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # The method, path and body it was first sent with (SHA-256), to refuse another body.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class Message(Base):
    """One email to one recipient, from draft to sent (or a side exit)."""

    __tablename__ = "message"
    __table_args__ = (
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        CheckConstraint(f"hold_kind IS NULL OR {_in('hold_kind', HOLD_KINDS)}",
                        name="hold_kind"),
        Index("ix_message_due", "status", "release_at"),
        Index("ix_message_account_sent", "account_id", "sent_at"),
        Index("ix_message_team_created", "team_id", "created_at", "id"),
        # The queue page: by release time, all of them or one status's tab.
        Index("ix_message_team_release", "team_id", "release_at", "id"),
        Index("ix_message_team_status_release", "team_id", "status", "release_at", "id"),
        Index("ix_message_team_contact", "team_id", "contact_id"),
        Index("ix_message_thread", "gmail_thread_id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("gmail_account.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    to_addr: Mapped[str] = mapped_column(String(400))
    from_addr: Mapped[str] = mapped_column(String(400))
    # Reply-To and copies (header-ready "Name <address>" strings).
    reply_to: Mapped[str | None] = mapped_column(String(400))
    cc: Mapped[list[str] | None] = mapped_column()
    bcc: Mapped[list[str] | None] = mapped_column()
    # Files to attach: [{"file_id"} | {"file_field"} | {"url"}, with "filename",
    # "content_type", "inline" and "cid"] (see scheduler/content/attachments.py).
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column()
    subject_tpl: Mapped[str] = mapped_column(Text)
    html_tpl: Mapped[str] = mapped_column(Text)
    text_tpl: Mapped[str | None] = mapped_column(Text)
    amp_tpl: Mapped[str | None] = mapped_column(Text)
    # Send-time content to fetch at release (copied from the template when queued).
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column()
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("template.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"))
    # Queued by a rule for an event: which, and when the event arrived (latency metric).
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("rule.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("event.id", ondelete="SET NULL"))
    event_at: Mapped[dt.datetime | None] = mapped_column()
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedule.id", ondelete="SET NULL"))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), index=True)
    variant: Mapped[str | None] = mapped_column(String(20))
    # A follow-up step: sent only if `follows` was sent and its recipient did not reply
    # (follow_unless "reply"; "person": wrote in any thread; "domain": anyone at their
    # company domain wrote) or click ("click") meanwhile.
    follows_id: Mapped[str | None] = mapped_column(
        ForeignKey("message.id", ondelete="SET NULL"))
    follow_unless: Mapped[str | None] = mapped_column(String(10))
    # An out-of-office with a return date moves this step to that date (at most 30 days).
    follow_postpone: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default=false())
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    transactional: Mapped[bool] = mapped_column(Boolean, default=False)
    tracking: Mapped[bool] = mapped_column(Boolean, default=True)
    # People's opens and clicks (machine signals are counted apart, and never trigger).
    opens: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    machine_opens: Mapped[int] = mapped_column(Integer, default=0)
    machine_clicks: Mapped[int] = mapped_column(Integer, default=0)
    # When an open (a person's, a machine's) was last counted: the images one look fetches
    # together are one open (delivery.tracking.SAME_OPEN_SECONDS).
    last_open_at: Mapped[dt.datetime | None] = mapped_column()
    last_machine_open_at: Mapped[dt.datetime | None] = mapped_column()
    subject: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    release_at: Mapped[dt.datetime | None] = mapped_column()
    lease_until: Mapped[dt.datetime | None] = mapped_column()
    needs_reconcile: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    rfc822_id: Mapped[str] = mapped_column(String(300), unique=True)
    # What made this message, when a machine did (a campaign phase for a contact, a
    # schedule's occurrence, a rule for an event): unique, so that no decision, however
    # often it runs, can make the same mail twice.
    origin_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    reply_thread_id: Mapped[str | None] = mapped_column(String(100))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    # The thread's Message-IDs, oldest first, for the References header of a reply.
    thread_references: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None] = mapped_column()
    gmail_message_id: Mapped[str | None] = mapped_column(String(100))
    gmail_thread_id: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    hold_kind: Mapped[str | None] = mapped_column(String(20))
    # A held message with hold_until is released by itself at that time (daily limits).
    hold_until: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    events: Mapped[list[MessageEvent]] = relationship(
        order_by="MessageEvent.id", cascade="all, delete-orphan")
    account: Mapped[GmailAccount] = relationship(lazy="joined")


class MessageEvent(Base):
    """A state change or a delivery event of a message, with its time."""

    __tablename__ = "message_event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"),
                                            index=True)
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    detail: Mapped[dict[str, Any] | None] = mapped_column()


class WorkerHeartbeat(Base):
    """A running release worker, so /healthz can say whether anything is sending."""

    __tablename__ = "worker_heartbeat"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def table(model: type[Base]) -> Table:
    """A model's Table, typed as one (Core statements on the hot paths use it)."""
    return cast(Table, model.__table__)


__all__ = ["table", "Base", "OutcomeCount", "Team", "User", "Membership", "GmailAccount",
           "AccountShare",
           "Invitation",
           "AuditEntry", "ApiToken", "Template",
           "Contact", "Rule", "Event", "Schedule", "Campaign", "Message", "IdempotencyKey",
           "WebSession", "StoredFile", "SendingDomain", "MailboxNotification",
           "MessageEvent", "WorkerHeartbeat", "MESSAGE_STATUSES", "HOLD_KINDS", "UTCDateTime"]
