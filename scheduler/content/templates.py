"""Templates: save (checked), read, change, delete, preview."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler.commands import HEADER_FIELDS, NewTemplate, stored_header
from scheduler.content import amp, attachments, live_images, starters
from scheduler.content import sources as content
from scheduler.content.links import Links, message_warnings, stand_in_links
from scheduler.content.personalize import check_template, inline_css, render_message, render_part
from scheduler.errors import Conflict, InvalidInput, MissingData
from scheduler.store import audit, lookup
from scheduler.store.audit import Actor
from scheduler.store.models import Template
from scheduler.typed import make

PARTS = ("subject", "html", "text", "amp")
FIELDS = ("name", *PARTS, "sources", "transactional", "tracking", "kind", "reply_to", "cc",
          "bcc", "attachments")
# "reply": a saved reply for support threads; its subject is the thread's ("Re: ...").
KINDS = ("email", "reply")
REPLY_SUBJECT = "Re: {{ thread_subject }}"


def check_parts(subject: str, html: str, text: str | None, amp: str | None) -> None:
    """Compile every part: a syntax error is a 422 naming the part and its line."""
    for name, source in (("subject", subject), ("html", html), ("text", text),
                         ("amp", amp)):
        if source is not None:
            check_template(name, source)


def template_values(command: NewTemplate, allowed_hosts: tuple[str, ...],
                    current: dict | None = None) -> dict:
    """A template's checked columns from a command (PUT: `current` fills what it leaves
    out). Compiles every part and checks AMP and sources: call it outside any write
    transaction. A `starter` is that starter's content under what else is given."""
    if command.starter is not None:
        base = starters.template_body(starters.starter(command.starter))
        overrides = command.model_dump(include=command.model_fields_set - {"starter"})
        command = make(NewTemplate, **{**base, **overrides})
    given = command.model_fields_set

    def pick(name: str):
        if current is not None and name not in given:
            return current[name]
        return getattr(command, name)

    name, kind = pick("name"), pick("kind") or "email"
    subject, html = pick("subject"), pick("html")
    if kind == "reply" and not subject and current is None:
        subject = REPLY_SUBJECT
    for field, value in (("name", name), ("subject", subject), ("html", html)):
        if not (value or "").strip():
            raise InvalidInput(f"{field} is required", field=field)
    values = {"kind": kind, "name": name.strip(), "subject": subject, "html": html,
              "text": pick("text") or None, "amp": pick("amp") or None}
    check_parts(values["subject"], values["html"], values["text"], values["amp"])
    if current is not None and "sources" not in given:
        values["sources"] = current["sources"]
    else:
        values["sources"] = content.check_sources(
            [x.model_dump(exclude_unset=True) for x in command.sources or ()], allowed_hosts)
    live_images.check_calls(values["html"], values["sources"])
    if values["amp"]:
        amp.check_amp(values["amp"], values["sources"])
    transactional, track = pick("transactional"), pick("tracking")
    values["transactional"] = bool(transactional)
    values["tracking"] = track is not False
    for name in HEADER_FIELDS:
        values[name] = stored_header(pick(name))
    values["attachments"] = (current["attachments"] if current is not None
                             and "attachments" not in given
                             else attachments.check(command.attachments, allowed_hosts))
    return values


def store_template(session: Session, *, team_id: int, user_id: int | None, values: dict,
                   now: dt.datetime, origin: str | None = None,
                   actor: Actor | None = None) -> Template:
    """Store checked values (`template_values`) as a new template; 409 if the name is
    taken. `origin` says where it came from (a starter, a Gmail draft)."""
    values = {**values, "attachments": attachments.save(session, team_id, user_id,
                                                        values.get("attachments"), now)}
    template = Template(team_id=team_id, created_by=user_id, origin=origin, created_at=now,
                        updated_at=now, **values)
    session.add(template)
    _flush_unique(session, values["name"])
    kind = (origin or "").partition(":")[0]
    audit.record(session, actor, {"starter": "added a starter template",
                                  "gmail-draft": "made a template from a Gmail draft"}.get(
                     kind, "created a template"), f"template {template.id}",
                 {"name": template.name}, now)
    return template


def create_template(session: Session, *, team_id: int, user_id: int | None,
                    command: NewTemplate, allowed_hosts: tuple[str, ...], now: dt.datetime,
                    origin: str | None = None) -> Template:
    """template_values and store_template in one session (for code already writing)."""
    return store_template(session, team_id=team_id, user_id=user_id, now=now, origin=origin,
                          values=template_values(command, allowed_hosts))


def _flush_unique(session: Session, name: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"a template named {name!r} exists already", field="name",
                       code="name_taken") from None


def get_template(session: Session, team_id: int, template_id) -> Template:
    """The team's template, or NotFound (also for another team's)."""
    return lookup.team_row(session, Template, team_id, template_id, "template",
                           field="template_id")


def list_templates(session: Session, team_id: int, kind: str | None = None
                   ) -> list[Template]:
    """The team's templates by name (only one kind: "email" or "reply", when given)."""
    query = select(Template).where(Template.team_id == team_id).order_by(Template.name)
    if kind is not None:
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
        query = query.where(Template.kind == kind)
    return list(session.scalars(query))


def current_values(template: Template) -> dict:
    """What a PUT leaves alone, read before its write transaction."""
    return {name: getattr(template, name) for name in FIELDS}


def update_template(session: Session, team_id: int, template_id, values: dict,
                    now: dt.datetime, actor: Actor | None = None) -> Template:
    """PUT: store checked values (`template_values` with `current_values`).

    Messages already queued keep the content they were queued with.
    """
    template = get_template(session, team_id, template_id)
    values = {**values, "attachments": attachments.save(session, team_id, template.created_by,
                                                        values.get("attachments"), now)}
    for key, value in values.items():
        setattr(template, key, value)
    template.updated_at = now
    _flush_unique(session, values["name"])
    audit.record(session, actor, "changed a template", f"template {template.id}",
                 {"name": template.name}, now)
    return template


def delete_template(session: Session, team_id: int, template_id,
                    actor: Actor | None = None) -> None:
    """Delete; queued messages keep their copy of its content."""
    template = get_template(session, team_id, template_id)
    session.delete(template)
    audit.record(session, actor, "deleted a template", f"template {template.id}",
                 {"name": template.name})


def preview(template_parts: dict, data: dict, fetcher: content.ContentFetcher,
            links: Links | None = None, at: str | None = None) -> dict:
    """Render every part for one recipient, fetching send-time content as a release would;
    with `links`, live images are drawn as the recipient would see them now (or at `at`,
    an ISO 8601 time).

    A variable with no value and no fallback is a 422 naming it, as it would hold the
    message.
    """
    values: dict = {}
    report: list = []
    try:
        values, report = fetcher.fetch(template_parts.get("sources"), data)
    except content.ContentUnavailable as exc:
        raise InvalidInput(str(exc), field="sources", code="missing_data") from None
    try:
        parts = render_message(template_parts["subject"], template_parts["html"],
                               template_parts.get("text"),
                               {**data, **values,
                                **stand_in_links(template_parts.get("sources"), data, links,
                                                 at)},
                               amp=template_parts.get("amp"))
    except MissingData as exc:
        raise InvalidInput(str(exc), field=exc.part, code="missing_data") from None
    return {"subject": parts.subject, "html": parts.html, "text": parts.text,
            "amp": parts.amp, "data": data, "sources": report,
            "warnings": message_warnings(parts.html)}


def for_draft(template: Template, data: dict) -> str:
    """A template's HTML for a draft the user sends from Gmail themselves (the add-on's
    insert): personalized, CSS inlined, no tracking and no unsubscribe link (the mail is
    not ours to track). Send-time content and live images need mailrelease to send the
    message: such a template is a 422, as is a variable with no value."""
    if template.sources or "live_image(" in template.html or "live_url(" in template.html:
        raise InvalidInput("this template fetches content when mailrelease sends it: "
                           "schedule it from the add-on instead of inserting it",
                           field="template_id")
    try:
        # The body only: the draft has its own subject.
        return inline_css(render_part("html", template.html, {**data, "unsubscribe_url": ""}))
    except MissingData as exc:
        raise InvalidInput(str(exc), field=exc.part, code="missing_data") from None


def template_as_dict(template: Template) -> dict:
    """The API representation."""
    return {"id": template.id, "name": template.name, "subject": template.subject,
            "html": template.html, "text": template.text, "amp": template.amp,
            "sources": template.sources or [], "transactional": template.transactional,
            "tracking": template.tracking, "kind": template.kind,
            "origin": template.origin, "reply_to": template.reply_to,
            "cc": template.cc or [], "bcc": template.bcc or [],
            "attachments": template.attachments or [],
            "created_at": template.created_at.isoformat(),
            "updated_at": template.updated_at.isoformat()}
