"""Domain operations on messages for the API and the UI: create, read, list, change."""
from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from email.headerregistry import Address
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session, selectinload

from gmail_client.mime import make_message_id
from scheduler.addresses import parse_address
from scheduler.audience import contacts, teams
from scheduler.commands import API, HEADER_FIELDS, MessageChange, NewMessage, Origin, stored_header
from scheduler.content import amp, attachments, templates
from scheduler.content import sources as content
from scheduler.content.links import Links, message_warnings, stand_in_links
from scheduler.content.personalize import render_message
from scheduler.content.templates import check_parts
from scheduler.errors import Conflict, InvalidInput, MissingData, NotFound
from scheduler.store import audit, lookup, queue
from scheduler.store.audit import Actor
from scheduler.store.db import utcnow
from scheduler.store.models import (
    MESSAGE_STATUSES,
    Contact,
    GmailAccount,
    Message,
    Team,
)
from scheduler.timing.best_hour import recipient_timing
from scheduler.timing.release_at import plan


def _render_check(subject: str, html: str, text: str | None, data: dict,
                  amp: str | None = None, sources: list | None = None
                  ) -> tuple[str | None, str | None, str | None]:
    """Compile every part (422 on a syntax error); return (why it must be held, if it
    must; its subject as the recipient will read it, when that is known before the
    release; warnings about what mail clients will do with it, if any: clipping, links
    that are not absolute, images without alt text).

    Send-time content is not fetched here: its variables are stand-ins until the release,
    so a message with sources shows its subject's template until it is sent.
    """
    check_parts(subject, html, text, amp)
    try:
        parts = _render_before_release(subject, html, text, data, amp, sources)
    except MissingData as exc:
        return str(exc), None, None
    return (None, None if sources else " ".join(parts.subject.split()),
            "; ".join(message_warnings(parts.html)) or None)


def _render_before_release(subject: str, html: str, text: str | None, data: dict,
                           amp: str | None, sources: list | None, links: Links | None = None):
    # Tracking links and send-time content exist only at the release: stand-ins until then
    # (with `links`, live images as previews: drawn, nothing counted).
    return render_message(subject, html, text, {**data, **stand_in_links(sources, data, links),
                                                **content.stand_ins(sources)}, amp=amp)


def rendered(message: Message, links: Links | None = None) -> dict:
    """The message's parts as its recipient gets them (send-time content and tracking links
    as stand-ins; live images drawn as previews with `links`), or {"problem": why} when it
    cannot be rendered (a held message)."""
    try:
        parts = _render_before_release(message.subject_tpl, message.html_tpl,
                                       message.text_tpl, message.data, message.amp_tpl,
                                       message.sources, links)
    except (MissingData, InvalidInput) as exc:
        return {"problem": str(exc)}
    return {"subject": parts.subject, "html": parts.html, "text": parts.text,
            "amp": parts.amp}


def pick_sender(session: Session, team_id: int, user_id: int | None,
                from_addr: str | None) -> tuple[GmailAccount, str]:
    """The sending account and From header: the named account or one of its Gmail sendAs
    aliases, else the caller's own account, else one shared with the team."""
    accounts = session.scalars(teams.usable_accounts(team_id, user_id)).all()
    if from_addr is not None:
        wanted = parse_address(from_addr, "from").addr_spec.lower()
        for account in accounts:
            if account.email.lower() == wanted:
                return account, _from_header(account.display_name, account.email)
        for account in accounts:
            for alias in account.send_as or ():
                if alias["email"].lower() == wanted:
                    return account, _from_header(alias.get("name") or account.display_name,
                                                 alias["email"])
        raise InvalidInput(f"{wanted} is neither a Gmail account you can send from in this "
                           "team nor one of its sendAs aliases", field="from")
    own = [a for a in accounts if a.user_id == user_id]
    if own or accounts:
        account = (own or accounts)[0]
        return account, _from_header(account.display_name, account.email)
    raise InvalidInput("no Gmail account is connected: sign in with Google first",
                       field="from")


def _from_header(name: str | None, address: str) -> str:
    return str(Address(display_name=name or "", addr_spec=address))


def _content(session: Session, team_id: int, command: NewMessage,
             allowed_hosts: tuple[str, ...]) -> dict:
    """subject/html/text/amp/sources from the template named by template_id, or inline,
    with the message's files (its own, else its template's)."""
    files = attachments.check(command.attachments, allowed_hosts)
    if command.template_id is None:
        if command.amp:
            amp.check_amp(command.amp)
        return {"subject": command.subject, "html": command.html, "text": command.text or None,
                "amp": command.amp or None, "sources": None, "template_id": None,
                "transactional": bool(command.transactional),
                "tracking": command.tracking is not False, **headers(command),
                "attachments": files}
    template = templates.get_template(session, team_id, command.template_id)
    return {"subject": template.subject, "html": template.html, "text": template.text,
            "amp": template.amp, "sources": template.sources or None,
            "template_id": template.id, "transactional": template.transactional,
            "tracking": template.tracking, **headers(command, template),
            "attachments": template.attachments if files is None else files}


def headers(command, default=None) -> dict:
    """reply_to, cc and bcc of a message: its command's where given (an empty list means
    none), else the template's or campaign's (`default`)."""
    out = {}
    for name in HEADER_FIELDS:
        value = getattr(command, name)
        if value is None and default is not None:
            value = getattr(default, name)
        out[name] = stored_header(value)
    return out


def _team_tracks(session: Session, team_id: int) -> bool:
    return bool(session.scalar(select(Team.tracking).where(Team.id == team_id)))


@dataclass(frozen=True)
class PreparedMessage:
    """A checked and rendered message, ready for `store_message`."""

    values: dict  # the Message's columns
    detail: dict  # its first timeline entry
    kind: str = "api"  # who makes it (Origin.kind)
    fields: tuple[str, ...] = ()  # the request's fields, for the audit log


def prepare_message(session: Session, *, team_id: int, user_id: int | None,
                    command: NewMessage, now: dt.datetime,
                    origin: Origin = API,
                    allowed_hosts: tuple[str, ...] = ()) -> PreparedMessage:
    """Check and render a message, reading only: a web request does this in a read
    transaction, so that no render holds the database's write lock.

    With template_id the template's content is copied: what was queued is what is sent,
    whatever later happens to the template. The recipient's contact fields (if the
    address is a contact) are merged under `data`. `draft` keeps it a draft until it is
    scheduled (send now, or a PATCH with a time). A machine that makes the message (a
    rule, a schedule, a campaign) says so in `origin`: its key is unique in the database,
    its ids go on the row, `hold` = (kind, reason) holds it for a person and `note` goes
    on its first timeline entry. An attachment fetched from a URL must be on one of
    `allowed_hosts` (MAILRELEASE_CONTENT_HOSTS).
    """
    to = parse_address(command.to, "to")
    parts = _content(session, team_id, command, allowed_hosts)
    contact, recipient = contacts.recipient(session, team_id, to)
    data = {**recipient, **command.data}
    timing = command.timing()
    release_at, timing_reason = plan(timing, now, recipient_timing(session, team_id, contact,
                                                                   timing))
    account, sender = pick_sender(session, team_id, user_id, command.sender)
    hold_reason, shown, warning = _render_check(parts["subject"], parts["html"],
                                                parts["text"], data, parts["amp"],
                                                parts["sources"])
    hold_kind = "missing_data" if hold_reason else None
    if origin.hold is not None and not hold_reason:
        hold_kind, hold_reason = origin.hold
    status = "held" if hold_reason else "draft" if command.draft else "scheduled"

    message_id = uuid.uuid4().hex
    values = dict(
        id=message_id, team_id=team_id, account_id=account.id, created_by=user_id,
        to_addr=str(to), from_addr=sender, subject_tpl=parts["subject"],
        html_tpl=parts["html"], text_tpl=parts["text"], amp_tpl=parts["amp"],
        subject=shown, sources=parts["sources"], template_id=parts["template_id"],
        transactional=parts["transactional"],
        tracking=parts["tracking"] and _team_tracks(session, team_id),
        contact_id=contact.id if contact else None,
        reply_to=parts["reply_to"], cc=parts["cc"], bcc=parts["bcc"],
        attachments=parts["attachments"], data=data, status=status, release_at=release_at,
        error=hold_reason,
        hold_kind=hold_kind, origin_key=origin.key, rule_id=origin.rule_id,
        schedule_id=origin.schedule_id,
        rfc822_id=make_message_id(f"mr.{message_id}", account.email.rpartition("@")[2]),
        reply_thread_id=command.thread_id, in_reply_to=command.in_reply_to,
        thread_references=(command.references or command.in_reply_to)
        if command.in_reply_to else None,
        created_at=now, updated_at=now,
    )
    detail = {"release_at": release_at.isoformat()}
    if timing_reason:
        detail["timing"] = timing_reason
    if parts["template_id"]:
        detail["template_id"] = parts["template_id"]
    if hold_reason:
        detail["reason"] = hold_reason
    if warning:
        detail["warning"] = warning
    fields = tuple(sorted(command.model_dump(by_alias=True,
                                             include=command.model_fields_set)))
    return PreparedMessage(values, {**detail, **(origin.note or {})}, origin.kind, fields)


def store_message(session: Session, prepared: PreparedMessage,
                  actor: Actor | None = None) -> Message:
    """Queue a prepared message (no render here: this runs in the write transaction); a
    person's (`actor`) is in the team's audit log."""
    values = prepared.values
    message = Message(**{**values, "attachments": attachments.save(
        session, values["team_id"], values["created_by"], values["attachments"],
        values["created_at"])})
    session.add(message)
    session.flush()
    queue.record_event(session, message.id, message.status, message.created_at,
                       prepared.detail)
    audit.record(session, actor, "queued a thread reply" if prepared.kind == "reply"
                 else "queued a message", f"message {message.id}",
                 {"fields": list(prepared.fields)}, message.created_at)
    return message


def get_message(session: Session, team_id: int, message_id: str) -> Message:
    """The team's message, or NotFound (also for another team's)."""
    message = session.scalar(select(Message).options(selectinload(Message.events))
                             .where(Message.id == message_id, Message.team_id == team_id))
    if message is None:
        raise NotFound(f"no message {message_id}", field="id")
    return message


SORTS = ("created", "release", "release_desc")


def _encode_cursor(message: Message, sort: str = "created") -> str:
    key: list[str | None]
    if sort == "created":
        key = [message.created_at.isoformat(), message.id]
    else:  # messages with a release time, then those without (drafts) by id
        key = [sort, message.release_at.isoformat() if message.release_at else None,
               message.id]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str = "created") -> tuple[dt.datetime | None, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded))
        if sort == "created":
            created, mid = key
            return dt.datetime.fromisoformat(created), str(mid)
        kind, at, mid = key
        if kind != sort:
            raise ValueError(kind)
        return (dt.datetime.fromisoformat(at) if at is not None else None), str(mid)
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput("cursor is not one this API gave out", field="cursor") from None


def _filtered(team_id: int, status: str | None, filters: dict | None):
    query = select(Message).where(Message.team_id == team_id)
    if status is not None:
        if status not in MESSAGE_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(MESSAGE_STATUSES)}",
                               field="status")
        query = query.where(Message.status == status)
    for name, column in (("account_id", Message.account_id),
                         ("campaign_id", Message.campaign_id), ("rule_id", Message.rule_id)):
        value = lookup.query_id((filters or {}).get(name), name)
        if value is not None:
            query = query.where(column == value)
    text = ((filters or {}).get("q") or "").strip()
    if text:
        like = f"%{text.lower()}%"
        query = query.where(func.lower(Message.to_addr).like(like)
                            | func.lower(func.coalesce(Message.subject, Message.subject_tpl))
                            .like(like))
    return query


def list_messages(session: Session, team_id: int, *, status: str | None = None,
                  cursor: str | None = None, limit: int = 100,
                  filters: dict | None = None,
                  sort: str = "created") -> tuple[list[Message], str | None]:
    """Keyset-paginated; returns (items, next_cursor).

    `sort`: created (newest first), release (soonest release first) or release_desc
    (latest first); by release, messages without a release time (drafts) come last.
    `filters`: account_id, campaign_id, rule_id (ids) and q (text in the recipient or the
    subject).
    """
    if sort not in SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(SORTS)}", field="sort")
    query = _filtered(team_id, status, filters).options(selectinload(Message.events))
    if sort == "created":
        if cursor:
            created, mid = _decode_cursor(cursor)
            query = query.where(tuple_(Message.created_at, Message.id) < (created, mid))
        rows = list(session.scalars(query.order_by(Message.created_at.desc(),
                                                   Message.id.desc()).limit(limit + 1)))
    else:
        at, mid = _decode_cursor(cursor, sort) if cursor else (None, "")
        rows = []
        if not cursor or at is not None:
            timed = query.where(Message.release_at.is_not(None))
            if cursor:
                timed = timed.where(tuple_(Message.release_at, Message.id) > (at, mid)
                                    if sort == "release" else
                                    tuple_(Message.release_at, Message.id) < (at, mid))
            order = ((Message.release_at.asc(), Message.id.asc()) if sort == "release"
                     else (Message.release_at.desc(), Message.id.desc()))
            rows = list(session.scalars(timed.order_by(*order).limit(limit + 1)))
        if len(rows) <= limit:  # then the drafts, by id
            untimed = query.where(Message.release_at.is_(None))
            if cursor and at is None:
                untimed = untimed.where(Message.id > mid)
            rows += list(session.scalars(untimed.order_by(Message.id)
                                         .limit(limit + 1 - len(rows))))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (_encode_cursor(rows[-1], sort) if more and rows else None)


def status_counts(session: Session, team_id: int, filters: dict | None = None) -> dict:
    """How many of the team's messages are in each status (with the same filters as the
    list), and in all."""
    query = _filtered(team_id, None, filters).with_only_columns(
        Message.status, func.count()).group_by(Message.status)
    counts = {st: 0 for st in MESSAGE_STATUSES}
    for st, n in session.execute(query):
        counts[st] = n
    counts["all"] = sum(counts.values())
    return counts


def _not_open(message: Message, action: str) -> Conflict:
    return Conflict(f"cannot {action} a message that is {message.status}", field="status",
                    code=f"not_{action.replace(' ', '_')}able")


class SendInDoubt(Conflict):
    """Cancel asked of a message whose worker died after it may have sent it: look in
    Gmail first (`settle_cancel`)."""

    code = "send_in_doubt"

    def __init__(self, message: Message):
        super().__init__(f"message {message.id} may have been sent by a worker that stopped; "
                         f"it must be looked up in Gmail before it can be cancelled",
                         field="status")
        self.message_id, self.account_id = message.id, message.account_id
        self.rfc822_id, self.claim_token = message.rfc822_id, message.claim_token


def _stuck(message: Message, now: dt.datetime) -> bool:
    """Sending, but its worker's lease has run out: nobody is sending it now."""
    return (message.status == "sending" and message.lease_until is not None
            and message.lease_until < now)


def cancel_message(session: Session, actor: Actor, message_id: str,
                   now: dt.datetime) -> Message:
    """Cancel unless sending has begun (then 409): never both cancelled and sent.

    A message left 'sending' by a worker that stopped (its lease expired) can be
    cancelled too: at once if that worker never reached Gmail, otherwise SendInDoubt
    asks the caller to look in Gmail first.
    """
    team_id, by = actor.team_id, actor.by
    message = get_message(session, team_id, message_id)
    if queue.transition(session, message_id, team_id, "cancel", now, {"by": by},
                        lease_until=None, hold_until=None):
        session.refresh(message)
        return _cancelled(session, actor, message, now)
    session.refresh(message)
    if _stuck(message, now):
        if message.needs_reconcile:
            raise SendInDoubt(message)
        if _cancel_stuck(session, message, now, {"by": by, "lease_expired": True}):
            session.refresh(message)
            return _cancelled(session, actor, message, now)
        session.refresh(message)
    raise _not_open(message, "cancel")


def _cancelled(session: Session, actor: Actor, message: Message, now: dt.datetime) -> Message:
    audit.record(session, actor, "cancelled a message", f"message {message.id}", None, now)
    return message


def _cancel_stuck(session: Session, message: Message, now: dt.datetime, detail: dict,
                  ) -> bool:
    # Only while the lease stays expired and nobody claimed it again meanwhile.
    return queue.transition(session, message.id, message.team_id, "cancel_stuck", now, detail,
                            where=(Message.lease_until < now,
                                   Message.claim_token == message.claim_token),
                            lease_until=None, claim_token=None, needs_reconcile=False)


def settle_cancel(session: Session, actor: Actor, doubt: SendInDoubt,
                  found: list[dict] | None, now: dt.datetime) -> Message:
    """Finish a cancel in doubt with what Gmail said: `found` (the messages with its
    Message-ID) makes it sent (the caller refuses the cancel once that is committed); an
    empty list cancels it; None means Gmail could not be asked (no read access):
    cancelled, saying it may have left."""
    message = get_message(session, actor.team_id, doubt.message_id)
    if not _stuck(message, now) or message.claim_token != doubt.claim_token:
        raise _not_open(message, "cancel")
    if found:
        claim = queue.Claim(message.id, message.claim_token or "", message.lease_until or now,
                            True, message.attempts, message.account_id)
        queue.mark_sent(session, claim, now, found[0]["id"], found[0].get("threadId", ""),
                        message.subject or message.subject_tpl, reconciled=True)
        session.refresh(message)
        return message
    detail = {"by": actor.by, "lease_expired": True,
              "reconciled": "not in the mailbox" if found is not None else
              "delivery unknown: the account grants no read access to check"}
    if not _cancel_stuck(session, message, now, detail):
        session.refresh(message)
        raise _not_open(message, "cancel")
    session.refresh(message)
    return _cancelled(session, actor, message, now)


def check_send_now(session: Session, team_id: int, message_id: str) -> None:
    """Before `send_now` (reading only): a message held for missing data goes only once
    it can be rendered (422 naming what is still missing)."""
    message = get_message(session, team_id, message_id)
    if message.status == "held" and message.hold_kind == "missing_data":
        reason, _, _ = _render_check(message.subject_tpl, message.html_tpl, message.text_tpl,
                                  message.data, message.amp_tpl, message.sources)
        if reason:
            raise InvalidInput(reason, field="data", code="missing_data")


def send_now(session: Session, actor: Actor, message_id: str, now: dt.datetime) -> Message:
    """Make an open message due immediately (after `check_send_now`; a held one that still
    lacks data would be held again at its release)."""
    team_id = actor.team_id
    message = get_message(session, team_id, message_id)
    values = {}
    if message.status == "held" and message.hold_kind == "account_gone":
        raise InvalidInput("the account this message was to go from left the team: edit it "
                           "to go from another account first", field="from")
    if message.status == "held" and message.hold_kind == "delivery_unknown":
        # The user has decided: send it again even though an earlier attempt may have left.
        values["needs_reconcile"] = False
    if not queue.transition(session, message_id, team_id, "schedule",
                            now, {"by": actor.by, "send_now": True}, release_at=now,
                            error=None, hold_kind=None, hold_until=None, **values):
        session.refresh(message)
        raise _not_open(message, "send now")
    session.refresh(message)
    audit.record(session, actor, "released a message now", f"message {message.id}", None, now)
    return message


@dataclass(frozen=True)
class PreparedChange:
    """A checked and rendered PATCH, ready for `apply_change`."""

    message_id: str
    change: str  # the transition: schedule, edit_held or edit_draft
    values: dict
    detail: dict
    hold_reason: str | None


def prepare_change(session: Session, team_id: int, message_id: str,
                   command: MessageChange, now: dt.datetime,
                   user_id: int | None = None) -> PreparedChange:
    """Check and render a PATCH (reading only): reschedule and/or edit content while the
    message is not yet sending; `from` moves it to another account the editing user
    (`user_id`) can send from."""
    message = get_message(session, team_id, message_id)  # another team's: 404 first
    given = command.model_fields_set
    values: dict = {}
    if "to" in given and command.to is not None:
        values["to_addr"] = command.to
    if "sender" in given:
        account, values["from_addr"] = pick_sender(session, team_id, user_id, command.sender)
        values["account_id"] = account.id
    elif message.hold_kind == "account_gone":
        raise InvalidInput("the account this message was to go from left the team: choose "
                           "another one (from)", field="from")

    def part(name: str, current):
        # Given: the new one ("" clears an optional part; subject and html cannot be
        # empty, the command refused that); left out: the current one.
        return (getattr(command, name) or None) if name in given else current

    subject, html = part("subject", message.subject_tpl), part("html", message.html_tpl)
    text, amp_part = part("text", message.text_tpl), part("amp", message.amp_tpl)
    data = command.data if "data" in given and command.data is not None else message.data
    values.update(subject_tpl=subject, html_tpl=html, text_tpl=text, amp_tpl=amp_part,
                  data=data)
    timing = command.timing()
    if timing:
        contact = session.get(Contact, message.contact_id) if message.contact_id else None
        values["release_at"] = plan(timing, now, recipient_timing(session, team_id, contact,
                                                                  timing))[0]
    hold_reason, values["subject"], warning = _render_check(subject, html, text, data,
                                                            amp_part, message.sources)
    draft = command.draft
    # A draft stays one until it is given a time or "draft": false.
    stays_draft = (message.status == "draft" and draft is not False
                   and "release_at" not in values) or draft is True
    change = "edit_held" if hold_reason else "edit_draft" if stays_draft else "schedule"
    if change == "edit_draft" and message.status != "draft":
        raise InvalidInput("only a draft can stay a draft: a queued message cannot go back",
                           field="draft")
    if message.status == "draft" and change == "schedule" and "release_at" not in values:
        values["release_at"] = max(message.release_at or now, now)  # its time, or now
    names = sorted(command.model_dump(by_alias=True, include=given))
    detail: dict[str, Any] = {"changed": names}
    if "release_at" in values:
        detail["release_at"] = values["release_at"].isoformat()
    if hold_reason:
        detail["reason"] = hold_reason
    if warning:
        detail["warning"] = warning
    return PreparedChange(message_id, change, values, detail, hold_reason)


def apply_change(session: Session, actor: Actor, prepared: PreparedChange,
                 now: dt.datetime) -> Message:
    """Store a prepared PATCH unless the message moved on meanwhile (409 then)."""
    team_id = actor.team_id
    message = get_message(session, team_id, prepared.message_id)
    hold_reason = prepared.hold_reason
    if not queue.transition(session, message.id, team_id, prepared.change, now,
                            {"by": actor.by, **prepared.detail}, error=hold_reason,
                            hold_kind="missing_data" if hold_reason else None, hold_until=None,
                            **prepared.values):
        session.refresh(message)
        raise _not_open(message, "edit")
    session.refresh(message)
    audit.record(session, actor, "edited a message", f"message {message.id}",
                 {"fields": prepared.detail["changed"]}, now)
    return message


def message_as_dict(message: Message) -> dict:
    """The API representation (contract: id, status, to, from, subject, times, ids, events)."""
    def iso(value):
        return value.isoformat() if value else None

    # Rendered when it was queued (or sent); a held message shows its template instead.
    subject = message.subject or message.subject_tpl
    return {
        "id": message.id,
        "status": message.status,
        "to": message.to_addr,
        "from": message.from_addr,
        "reply_to": message.reply_to,
        "cc": message.cc or [],
        "bcc": message.bcc or [],
        "attachments": message.attachments or [],
        "subject": subject,
        "release_at": iso(message.release_at),
        "sent_at": iso(message.sent_at),
        "gmail_message_id": message.gmail_message_id,
        "thread_id": message.gmail_thread_id or message.reply_thread_id,
        "message_id_header": message.rfc822_id,
        "attempts": message.attempts,
        "error": message.error,
        "hold_kind": message.hold_kind,
        "hold_until": iso(message.hold_until),
        "lease_until": iso(message.lease_until),
        # Open, or left 'sending' by a worker that stopped (its lease ran out).
        "cancellable": message.status in queue.OPEN_STATUSES or _stuck(message, utcnow()),
        "template_id": message.template_id,
        "contact_id": message.contact_id,
        "transactional": message.transactional,
        "tracking": message.tracking,
        "opens": message.opens,
        "clicks": message.clicks,
        "machine_opens": message.machine_opens,
        "machine_clicks": message.machine_clicks,
        "created_at": iso(message.created_at),
        "events": [{"type": e.type, "at": iso(e.at), "detail": e.detail}
                   for e in message.events],
    }
