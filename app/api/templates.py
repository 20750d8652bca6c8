"""REST API for content: templates, starter templates, Gmail drafts, contacts.

Routes live on the API blueprint (app.api.bp), with its authentication and error shape.
"""
from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint, g, jsonify
from pydantic import Field

from app import actor, ctx, idempotent
from app.api import responses
from app.api.endpoint import Query, route
from app.audit import changes_nothing
from scheduler import commands
from scheduler.addresses import parse_address
from scheduler.audience import contacts
from scheduler.content import attachments, drafts, starters, templates
from scheduler.engine import messages
from scheduler.errors import InvalidInput
from scheduler.store import audit, idempotency
from scheduler.store.db import utcnow
from scheduler.store.models import GmailAccount
from scheduler.timing import best_hour
from scheduler.typed import make

bp = Blueprint("templates", __name__)


# -- templates ---------------------------------------------------------------------------

class KindQuery(Query):
    """?kind=reply: only the saved replies."""

    kind: Literal["email", "reply"] | None = None


@route(bp, "POST", "/templates", body=commands.NewTemplate,
       answers={201: responses.Template}, role="member",
       max_bytes=commands.MAX_REQUEST_WITH_FILES)
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


@route(bp, "POST", "/files", body=commands.NewFile, answers={201: responses.StoredFile},
       role="member", max_bytes=commands.MAX_REQUEST_WITH_FILES)
def create_file(body: commands.NewFile):
    """Upload a file (201) to attach by `file_id`, or to name from a contact attribute or
    CSV column (`file_field`); the same bytes, name and type again are the same file."""
    c = ctx()
    content = attachments.decode(body.content_base64, "content_base64")
    if len(content) > attachments.MAX_TOTAL_BYTES:
        raise InvalidInput("the file is above Gmail's 25 MB for a message's attachments",
                           field="content_base64")
    name = attachments.file_name(body.filename)
    kind = attachments.content_type_for(name, body.content_type)
    with c.db.write() as s:
        held = idempotent.claim(s)
        stored = attachments.store_file(s, team_id=g.team_id, user_id=g.user_id,
                                        filename=name, content_type=kind,
                                        content=content, now=utcnow())
        s.flush()
        audit.record(s, actor(), "uploaded a file", f"file {stored.id}",
                     {"filename": stored.filename, "size": stored.size}, utcnow())
        out = attachments.file_as_dict(stored)
        idempotency.remember(s, held, 201, out)
    return jsonify(out), 201


@route(bp, "GET", "/files", answers={200: responses.Page[responses.StoredFile]})
def list_files():
    """The team's uploaded files, newest first."""
    with ctx().db.read() as s:
        items = [attachments.file_as_dict(f) for f in attachments.list_files(s, g.team_id)]
    return jsonify({"items": items, "next_cursor": None})


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
       answers={200: responses.Template}, role="member",
       max_bytes=commands.MAX_REQUEST_WITH_FILES)
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
    _, recipient = contacts.recipient(s, g.team_id, parse_address(to, "to"))
    return {**recipient, **data}


def _best_hour(s, to: str | None) -> dict:
    """With `to`: when best_hour would send to them, and the reason."""
    if to is None:
        return {}
    contact = contacts.find_contact(s, g.team_id, parse_address(to, "to").addr_spec)
    return {"best_hour": best_hour.best_hour_for(s, g.team_id, contact, utcnow())}


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
    return jsonify({**templates.preview(parts, data, c.content, c.links, _at(body)), **best})


def _at(body) -> str | None:
    return body.at.isoformat() if body.at else None


@route(bp, "POST", "/templates/preview", body=commands.PreviewContent,
       answers={200: responses.Preview})
@changes_nothing
def preview_inline(body: commands.PreviewContent):
    """Preview content that is not saved yet (`subject`, `html`, ... plus `to`/`data`)."""
    c = ctx()
    fields = body.model_dump(include=body.model_fields_set - {"to", "data", "at"})
    parts = templates.template_values(make(commands.NewTemplate, **{"name": "preview",
                                                                     **fields}),
                                      c.settings.content_hosts)
    with c.db.read() as s:
        data = _preview_data(s, body.to, body.data)
        best = _best_hour(s, body.to)
    return jsonify({**templates.preview(parts, data, c.content, c.links, _at(body)), **best})


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
    c.gmail.save_refresh(c.db, account, service, utcnow())
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


