"""REST API for content: templates, starter templates, Gmail drafts, contacts.

Routes live on the API blueprint (app.api.bp), with its authentication and error shape.
"""
from __future__ import annotations

import json
from typing import Annotated, Literal

from flask import Response, g, jsonify, request, stream_with_context
from pydantic import Field

from app import actor, ctx, idempotent, responses
from app.api import Listing, bp
from app.audit import changes_nothing
from app.endpoint import Query, route
from app.progress import own_copy, with_progress
from scheduler import commands, sanity
from scheduler.addresses import parse_address
from scheduler.audience import contacts
from scheduler.content import drafts, starters, templates
from scheduler.engine import messages
from scheduler.errors import InvalidInput
from scheduler.store import idempotency, lookup
from scheduler.store.db import utcnow
from scheduler.store.models import GmailAccount
from scheduler.typed import make, parse

MAX_IMPORT_BYTES = 256 * 1024 * 1024
MAX_CONTACTS_PER_POST = 10_000


# -- templates ---------------------------------------------------------------------------

class KindQuery(Query):
    """?kind=reply: only the saved replies."""

    kind: Literal["email", "reply"] | None = None


@route(bp, "POST", "/templates", body=commands.NewTemplate,
       answers={201: responses.Template}, role="member")
def create_template(body: commands.NewTemplate):
    """Save a template (201), or load a starter with {"starter": key}.
    A syntax error is a 422 naming the part and line; a name in use is 409."""
    c = ctx()
    values = templates.template_values(body, c.settings.content_hosts)  # outside any write
    with c.db.write() as s:
        held = idempotent.claim(s)
        template = templates.store_template(
            s, team_id=g.team_id, user_id=g.user_id, values=values, now=utcnow(),
            origin=f"starter:{body.starter}" if body.starter else None, actor=actor())
        s.flush()
        out = templates.template_as_dict(template)
        idempotency.remember(s, held, 201, out)
    return jsonify(out), 201


@route(bp, "GET", "/templates", query=KindQuery,
       answers={200: responses.Page[responses.Template]})
def list_templates(query: KindQuery):
    """The team's templates (`?kind=reply`: the saved replies)."""
    with ctx().db.read() as s:
        return jsonify({"items": [templates.template_as_dict(t) for t in
                                  templates.list_templates(s, g.team_id, query.kind)],
                        "next_cursor": None})


@route(bp, "GET", "/templates/<template_id>", answers={200: responses.Template})
def get_template(template_id):
    """One template."""
    with ctx().db.read() as s:
        return jsonify(templates.template_as_dict(
            templates.get_template(s, g.team_id, template_id)))


@route(bp, "PUT", "/templates/<template_id>", body=commands.NewTemplate,
       answers={200: responses.Template}, role="member")
def update_template(template_id, body: commands.NewTemplate):
    """Change a template; queued messages keep the content they were queued with.
    Fields left out keep their value."""
    c = ctx()
    with c.db.read() as s:
        current = templates.current_values(templates.get_template(s, g.team_id, template_id))
    values = templates.template_values(body, c.settings.content_hosts, current)
    with c.db.write() as s:
        template = templates.update_template(s, g.team_id, template_id, values, utcnow(),
                                              actor())
        return jsonify(templates.template_as_dict(template))


@route(bp, "DELETE", "/templates/<template_id>", answers={204: None}, role="member")
def delete_template(template_id):
    """Delete a template (204)."""
    with ctx().db.write() as s:
        templates.delete_template(s, g.team_id, template_id, actor())
    return "", 204


def _preview_data(s, to: str | None, data: dict) -> dict:
    if to is None:
        return data
    _, recipient = templates.recipient(s, g.team_id, parse_address(to, "to"))
    return {**recipient, **data}


def _best_hour(s, to: str | None) -> dict:
    """With `to`: when best_hour would send to them, and the reason."""
    if to is None:
        return {}
    address = parse_address(to, "to").addr_spec
    return {"best_hour": messages.best_hour_for(s, g.team_id, address, utcnow())}


@route(bp, "POST", "/templates/<template_id>/preview", body=commands.PreviewData,
       answers={200: responses.Preview})
@changes_nothing
def preview_template(template_id, body: commands.PreviewData):
    """Every part rendered for a contact (`to`) and/or `data`, send-time content included."""
    c = ctx()
    with c.db.read() as s:
        template = templates.get_template(s, g.team_id, template_id)
        parts = templates.template_as_dict(template)
        data = _preview_data(s, body.to, body.data)
        best = _best_hour(s, body.to)
    return jsonify({**templates.preview(parts, data, c.content), **best})


@route(bp, "POST", "/templates/preview", body=commands.PreviewContent,
       answers={200: responses.Preview})
@changes_nothing
def preview_inline(body: commands.PreviewContent):
    """Preview content that is not saved yet (`subject`, `html`, ... plus `to`/`data`)."""
    c = ctx()
    fields = body.model_dump(include=body.model_fields_set - {"to", "data"})
    parts = templates.template_values(make(commands.NewTemplate, **{"name": "preview",
                                                                     **fields}),
                                      c.settings.content_hosts)
    with c.db.read() as s:
        data = _preview_data(s, body.to, body.data)
        best = _best_hour(s, body.to)
    return jsonify({**templates.preview(parts, data, c.content), **best})


@route(bp, "GET", "/starter-templates", answers={200: responses.Page[responses.Starter]})
def list_starters():
    """The starter templates that ship with mailrelease (load one with POST /templates
    {"starter": key})."""
    return jsonify({"items": list(starters.starters().values()), "next_cursor": None})


# -- Gmail drafts ------------------------------------------------------------------------

def _account(s, address: str | None) -> GmailAccount:
    return messages.pick_sender(s, g.team_id, g.user_id, address)[0]


class DraftsQuery(Query):
    """?account=: which of your accounts (default: your own)."""

    account: Annotated[str, Field(max_length=320)] | None = None


@route(bp, "GET", "/gmail/drafts", query=DraftsQuery,
       answers={200: responses.Page[responses.Draft]}, errors=(502,))
def list_gmail_drafts(query: DraftsQuery):
    """The sending account's newest Gmail drafts, with the placeholders each uses."""
    c = ctx()
    with c.db.read() as s:
        account = _account(s, query.account)
        s.expunge(account)
    service = c.gmail_for(account)
    items = drafts.list_drafts(service)
    with c.db.write() as s:
        c.gmail.keep_refreshed_account(s, account, service, utcnow())
    return jsonify({"items": items, "next_cursor": None})


@route(bp, "POST", "/templates/from-draft", body=commands.TemplateFromDraft,
       answers={201: responses.DraftTemplate}, role="member", errors=(502,))
def template_from_draft(body: commands.TemplateFromDraft):
    """Make a template of a Gmail draft: `draft_id`, optional `name`, `account`."""
    c = ctx()
    with c.db.read() as s:
        account = _account(s, body.account)
        s.expunge(account)
    service = c.gmail_for(account)
    parts = drafts.read_draft(service, body.draft_id)
    name = body.name or (parts["subject"] or "").strip()[:200] or f"Gmail draft {body.draft_id}"
    values = templates.template_values(make(
        commands.NewTemplate, name=name, **{k: v for k, v in parts.items() if v is not None}),
        c.settings.content_hosts)
    with c.db.write() as s:
        c.gmail.keep_refreshed_account(s, account, service, utcnow())
        template = templates.store_template(
            s, team_id=g.team_id, user_id=g.user_id, values=values, now=utcnow(),
            origin=f"gmail-draft:{body.draft_id}", actor=actor())
        s.flush()
        out = templates.template_as_dict(template)
    out["placeholders"] = sorted(drafts.placeholders(parts))
    return jsonify(out), 201


# -- contacts ----------------------------------------------------------------------------

def _contacts(raw) -> list[commands.NewContact]:
    """One contact or a list, each checked; 422 names the item and field."""
    if isinstance(raw, list):
        if not raw:
            raise InvalidInput("send a contact or a non-empty list of contacts")
        if len(raw) > MAX_CONTACTS_PER_POST:
            raise InvalidInput(f"at most {MAX_CONTACTS_PER_POST} contacts per request: "
                               f"import a CSV for more", field="contacts")
        return [parse(commands.NewContact, item, f"contacts[{i}]")
                for i, item in enumerate(raw)]
    return [parse(commands.NewContact, raw, "contact")]


@route(bp, "POST", "/contacts", body=commands.NewContact | list[commands.NewContact],
       body_kind="raw", answers={200: responses.ContactsAdded, 201: responses.ContactsAdded},
       role="member")
def add_contacts():
    """One contact or a list; a later entry for a known address updates it. All or none.
    201 when any is new, 200 when all were known."""
    c = ctx()
    if not request.is_json:
        raise InvalidInput("send JSON (one contact or a list), or CSV to /contacts/import")
    items = _contacts(sanity.loads(request.get_data(cache=True)))
    with c.db.write() as s:
        held = idempotent.claim(s)
        report, stored = contacts.add_contacts(s, g.team_id, items, utcnow(), actor())
        out = {**report.as_dict(), "items": [contacts.contact_as_dict(x) for x in stored]}
        status = 201 if report.imported else 200
        idempotency.remember(s, held, status, out)
    return jsonify(out), status


class ContactQuery(Listing):
    """?email= finds one address."""

    email: Annotated[str, Field(max_length=320)] | None = None


@route(bp, "GET", "/contacts", query=ContactQuery,
       answers={200: responses.Page[responses.Contact]})
def list_contacts(query: ContactQuery):
    """The team's contacts, oldest first; `?email=` finds one address."""
    after = lookup.query_id(query.cursor, "cursor", "cursor is not one this API gave out")
    with ctx().db.read() as s:
        items, nxt = contacts.list_contacts(s, g.team_id, after=after, limit=query.limit,
                                            email=query.email)
        return jsonify({"items": [contacts.contact_as_dict(x) for x in items],
                        "next_cursor": str(nxt) if nxt else None})


@route(bp, "DELETE", "/contacts/<contact_id>", answers={204: None}, role="member")
def delete_contact(contact_id):
    """Delete a contact (204); its messages not yet sending are cancelled."""
    c = ctx()
    with c.db.write() as s:
        contacts.delete_contact(s, actor(), contact_id, utcnow())
    return "", 204


@route(bp, "GET", "/contacts/<contact_id>", answers={200: responses.Contact})
def get_contact(contact_id):
    """One contact."""
    with ctx().db.read() as s:
        return jsonify(contacts.contact_as_dict(contacts.get_contact(s, g.team_id,
                                                                     contact_id)))


def import_stream():
    """The uploaded CSV: a multipart `file` field, or the raw body (text/csv)."""
    request.max_content_length = MAX_IMPORT_BYTES
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise InvalidInput("attach the CSV as the form field `file`", field="file")
        return upload.stream
    return request.stream


@route(bp, "POST", "/contacts/import", body_kind="csv", answers={200: responses.ImportReport},
       role="member")
def import_contacts():
    """Import a CSV: {"imported", "updated", "rejected": [{"row", "error"}]}.

    With `Accept: application/x-ndjson` the answer streams progress lines
    ({"rows": n}) while it works, then the report as the last line.
    """
    c = ctx()
    stream = import_stream()
    team_id, now, who = g.team_id, utcnow(), actor()
    held = None
    streamed = "application/x-ndjson" in request.headers.get("Accept", "")
    if request.headers.get(idempotency.HEADER) is not None or streamed:
        stream = own_copy(stream)  # hashed for the key, or read after the view returns
    if request.headers.get(idempotency.HEADER) is not None:
        # An import runs in many transactions: its key is held in one of its own first
        # and given up if the import fails, so that a retry runs it.
        try:
            with c.db.write() as s:
                held = idempotent.claim(s, idempotent.digest(stream))
        except BaseException:
            stream.close()
            raise
    if not streamed:
        try:
            report = contacts.import_csv(c.db, team_id, stream, now, actor=who).as_dict()
        except BaseException:
            with c.db.write() as s:
                idempotency.forget(s, held)
            raise
        finally:
            if held is not None:
                stream.close()
        with c.db.write() as s:
            idempotency.remember(s, held, 200, report)
        return jsonify(report)

    data = stream

    def lines():
        finished = False
        try:
            for item in import_with_progress(c.db, team_id, data, now, who):
                if "rows" not in item:
                    with c.db.write() as s:
                        idempotency.remember(s, held, 200, item)
                    finished = True
                yield json.dumps(item) + "\n"
        except InvalidInput as exc:
            yield json.dumps({"error": {"code": exc.code, "message": exc.message,
                                        "field": exc.field}}) + "\n"
        finally:
            data.close()
            if not finished and held is not None:
                with c.db.write() as s:
                    idempotency.forget(s, held)
    return Response(stream_with_context(lines()), mimetype="application/x-ndjson")


def import_with_progress(db, team_id, stream, now, who):
    """Run an import on a thread; yield {"rows": n} as it goes, then the report."""
    return with_progress(
        lambda progress: contacts.import_csv(db, team_id, stream, now, progress=progress,
                                             actor=who).as_dict(), "rows")
