"""Templates: save (checked), read, change, delete, preview."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler import amp, content, lookup, tracking
from scheduler.errors import Conflict, InvalidInput, MissingData
from scheduler.models import Contact, Template
from scheduler.personalize import check_template, render_message

MAX_PART_BYTES = 2_000_000
PARTS = ("subject", "html", "text", "amp")
FIELDS = ("name", *PARTS, "sources", "transactional", "tracking", "kind")
# "reply": a saved reply for support threads; its subject is the thread's ("Re: ...").
KINDS = ("email", "reply")
REPLY_SUBJECT = "Re: {{ thread_subject }}"


def text_field(body: dict, name: str, required: bool) -> str | None:
    """A string field of a request body: 422 naming it when missing, empty or too large.

    An optional field sent as "" counts as absent.
    """
    value = body.get(name)
    if value is None or (not required and value == ""):
        if required:
            raise InvalidInput(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=name)
    if required and not value.strip():
        raise InvalidInput(f"{name} must not be empty", field=name)
    if len(value.encode("utf-8")) > MAX_PART_BYTES:
        raise InvalidInput(f"{name} is larger than {MAX_PART_BYTES} bytes", field=name)
    return value


def check_parts(subject: str, html: str, text: str | None, amp: str | None) -> None:
    """Compile every part: a syntax error is a 422 naming the part and its line."""
    for name, source in (("subject", subject), ("html", html), ("text", text),
                         ("amp", amp)):
        if source is not None:
            check_template(name, source)


def _values(body: dict, allowed_hosts: tuple[str, ...], current: Template | None) -> dict:
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    unknown = set(body) - set(FIELDS) - {"starter"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(f"{name} is not a template field", field=name)

    def pick(name, required):
        if current is not None and name not in body:
            return getattr(current, name)
        return text_field(body, name, required)

    name = pick("name", True)
    if len(name) > 200:
        raise InvalidInput("name is longer than 200 characters", field="name")
    kind = body.get("kind", current.kind if current else "email")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if kind == "reply" and not body.get("subject") and current is None:
        body = {**body, "subject": REPLY_SUBJECT}
    values = {"kind": kind, "name": name.strip(), "subject": pick("subject", True),
              "html": pick("html", True),
              "text": pick("text", False), "amp": pick("amp", False)}
    check_parts(values["subject"], values["html"], values["text"], values["amp"])
    if current is not None and "sources" not in body:
        values["sources"] = current.sources
    else:
        values["sources"] = content.check_sources(body.get("sources"), allowed_hosts)
    if values["amp"]:
        amp.check_amp(values["amp"], values["sources"])
    transactional = body.get("transactional", current.transactional if current else False)
    if not isinstance(transactional, bool):
        raise InvalidInput("transactional must be true or false", field="transactional")
    values["transactional"] = transactional
    track = body.get("tracking", current.tracking if current else True)
    if not isinstance(track, bool):
        raise InvalidInput("tracking must be true or false", field="tracking")
    values["tracking"] = track
    return values


def create_template(session: Session, *, team_id: int, user_id: int | None, body: dict,
                    allowed_hosts: tuple[str, ...], now: dt.datetime,
                    origin: str | None = None) -> Template:
    """Check and store a template (422 naming the field or template line; 409 if the name
    is taken)."""
    values = _values(body, allowed_hosts, None)
    template = Template(team_id=team_id, created_by=user_id, origin=origin, created_at=now,
                        updated_at=now, **values)
    session.add(template)
    _flush_unique(session, values["name"])
    return template


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


def update_template(session: Session, team_id: int, template_id, body: dict,
                    allowed_hosts: tuple[str, ...], now: dt.datetime) -> Template:
    """PUT: replace the given fields (others kept), checked as at creation.

    Messages already queued keep the content they were queued with.
    """
    template = get_template(session, team_id, template_id)
    values = _values(body, allowed_hosts, template)
    for key, value in values.items():
        setattr(template, key, value)
    template.updated_at = now
    _flush_unique(session, values["name"])
    return template


def delete_template(session: Session, team_id: int, template_id) -> None:
    """Delete; queued messages keep their copy of its content."""
    session.delete(get_template(session, team_id, template_id))


def contact_data(contact: Contact | None, email: str | None) -> dict:
    """What a template sees of a recipient: attributes, then email, name, time zone."""
    if contact is None:
        return {"email": email} if email else {}
    data = dict(contact.attributes or {})
    data.update(email=contact.email, name=contact.name or data.get("name"),
                timezone=contact.timezone)
    return {k: v for k, v in data.items() if v is not None}


def recipient(session: Session, team_id: int, address) -> tuple[Contact | None, dict]:
    """The contact behind an address (an email.headerregistry.Address) and what a
    template sees of them; without a contact, the address and its display name."""
    contact = find_contact(session, team_id, address.addr_spec)
    data = contact_data(contact, address.addr_spec.lower())
    if contact is None and address.display_name:
        data["name"] = address.display_name
    return contact, data


def find_contact(session: Session, team_id: int, email: str) -> Contact | None:
    """The team's contact with this address (addresses are stored lower-cased)."""
    return session.scalar(select(Contact).where(Contact.team_id == team_id,
                                                Contact.email == email.strip().lower()))


def preview(template_parts: dict, data: dict, fetcher: content.ContentFetcher) -> dict:
    """Render every part for one recipient, fetching send-time content as a release would.

    A variable with no value and no fallback is a 422 naming it, as it would hold the
    message.
    """
    values, report = ({}, [])
    try:
        values, report = fetcher.fetch(template_parts.get("sources"), data)
    except content.ContentUnavailable as exc:
        raise InvalidInput(str(exc), field="sources", code="missing_data") from None
    try:
        parts = render_message(template_parts["subject"], template_parts["html"],
                               template_parts.get("text"),
                               {**data, **values,
                                **tracking.stand_in_links(template_parts.get("sources"))},
                               amp=template_parts.get("amp"))
    except MissingData as exc:
        raise InvalidInput(str(exc), field=exc.part, code="missing_data") from None
    return {"subject": parts.subject, "html": parts.html, "text": parts.text,
            "amp": parts.amp, "data": data, "sources": report}


def template_as_dict(template: Template) -> dict:
    """The API representation."""
    return {"id": template.id, "name": template.name, "subject": template.subject,
            "html": template.html, "text": template.text, "amp": template.amp,
            "sources": template.sources or [], "transactional": template.transactional,
            "tracking": template.tracking, "kind": template.kind,
            "origin": template.origin, "created_at": template.created_at.isoformat(),
            "updated_at": template.updated_at.isoformat()}
