"""Pages for content: templates (starters, Gmail drafts, edit, preview)."""
from __future__ import annotations

import base64
import json
import re

from flask import (
    Blueprint,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from app import actor, audit, ctx
from app.audit import changes_nothing
from app.auth import login_required, viewer_ok
from app.ui import json_field, not_found, preview_problem
from scheduler.audience import contacts
from scheduler.commands import NewTemplate
from scheduler.content import drafts, live_images, starters, templates
from scheduler.engine.messages import pick_sender
from scheduler.errors import DomainError, InvalidInput
from scheduler.store.db import utcnow
from scheduler.timing import best_hour
from scheduler.typed import make

bp = Blueprint("content", __name__)

FORM_PARTS = ("name", "subject", "html", "text", "amp", "kind")


@bp.get("/templates")
@login_required
def templates_page():
    """The team's templates, the starters, and a way in from Gmail drafts."""
    with ctx().db.read() as s:
        rows = [templates.template_as_dict(t) for t in templates.list_templates(s, g.team_id)]
    return render_template("ui/templates.html", rows=rows,
                           starters=list(starters.starters().values()))


def _save(body: dict, template_id=None, origin=None):
    """Check (outside any write transaction), then store; the template's id."""
    c = ctx()
    command = make(NewTemplate, **body)
    current = None
    if template_id is not None:
        with c.db.read() as s:
            current = templates.current_values(templates.get_template(s, g.team_id,
                                                                      template_id))
    values = templates.template_values(command, c.settings.content_hosts, current)
    with c.db.write() as s:
        if template_id is None:
            t = templates.store_template(s, team_id=g.team_id, user_id=g.user_id,
                                         values=values, now=utcnow(), origin=origin,
                                         actor=actor())
        else:
            t = templates.update_template(s, g.team_id, template_id, values, utcnow(),
                                          actor())
        s.flush()
        return t.id


@bp.post("/templates/starter")
@login_required
def add_starter():
    """Copy a starter into the team's templates."""
    try:
        found = starters.starter(request.form.get("key", ""))
        tid = _save(starters.template_body(found), origin=f"starter:{found['key']}")
    except DomainError as exc:
        audit.skip()
        flash(exc.message, "error")
        return redirect(url_for("ui.content.templates_page"))
    flash(f"Added the starter “{found['name']}”.", "ok")
    return redirect(url_for("ui.content.template_page", template_id=tid))


def _sample_data(origin) -> str:
    """A starter's sample data (JSON), so that its preview works before any contact has
    the fields it uses; "" for other templates."""
    key = origin.removeprefix("starter:") if isinstance(origin, str) else ""
    if not key or key == origin:
        return ""
    found = starters.starters().get(key)
    return json.dumps(found["sample_data"], indent=2, ensure_ascii=False) if found else ""


@bp.get("/templates/drafts")
@login_required
def drafts_page():
    """The sending account's Gmail drafts, each with a button to make it a template."""
    c = ctx()
    try:
        with c.db.read() as s:
            account = pick_sender(s, g.team_id, g.user_id, None)[0]
            s.expunge(account)
        service = c.gmail_for(account)
        items = drafts.list_drafts(service)
        c.gmail.save_refresh(c.db, account, service, utcnow())
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("ui.content.templates_page"))
    return render_template("ui/drafts.html", items=items, account=account.email)


@bp.post("/templates/drafts")
@login_required
def use_draft():
    """Make a template of one Gmail draft."""
    c = ctx()
    draft_id = request.form.get("draft_id", "")
    try:
        with c.db.read() as s:
            account = pick_sender(s, g.team_id, g.user_id, None)[0]
            s.expunge(account)
        service = c.gmail_for(account)
        parts = drafts.read_draft(service, draft_id)
        tid = _save({"name": parts["subject"] or f"Gmail draft {draft_id}", **parts},
                    origin=f"gmail-draft:{draft_id}")
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("ui.content.drafts_page"))
    flash("The draft is now a template.", "ok")
    return redirect(url_for("ui.content.template_page", template_id=tid))


def _form_attachments(form, current: list) -> list[dict]:
    """The editor's files: the template's own it keeps (by index), new uploads (an image
    uploaded as inline is shown where the HTML says cid:<its file name>), and a contact
    attribute naming a stored file per recipient."""
    keep = set(form.getlist("keep_attachment"))
    specs = [{k: v for k, v in ref.items() if k != "size"}
             for n, ref in enumerate(current) if str(n) in keep]
    for field, inline in (("new_files", False), ("inline_images", True)):
        for upload in request.files.getlist(field):
            if not upload or not upload.filename:
                continue
            content = upload.read()
            spec = {"filename": upload.filename[:255],
                    "content_base64": base64.b64encode(content).decode("ascii")}
            if upload.mimetype and upload.mimetype != "application/octet-stream":
                spec["content_type"] = upload.mimetype
            if inline:
                spec["cid"] = _CID.sub("-", upload.filename)[:100].lstrip(".-_@") or "image"
            specs.append(spec)
    name = form.get("file_field", "").strip()
    if name:
        specs.append({"file_field": name})
    return specs


_CID = re.compile(r"[^A-Za-z0-9._@-]")


def _form_body(form, current_files: list | None = None) -> dict:
    body = {k: form.get(k) for k in FORM_PARTS}
    if form.get("attachments_form"):
        body["attachments"] = _form_attachments(form, current_files or [])
    body["text"] = body["text"] or None
    body["amp"] = body["amp"] or None
    body["sources"] = json_field(form, "sources", [])
    body["transactional"] = form.get("transactional") == "on"
    if not body["kind"]:
        del body["kind"]  # a form without the field keeps the template's kind
    return body


@bp.route("/templates/new", methods=["GET", "POST"], defaults={"template_id": None})
@bp.route("/templates/<int:template_id>", methods=["GET", "POST"])
@login_required
def template_page(template_id):
    """Edit a template and preview it for a contact or data."""
    c = ctx()
    preview, error_field = None, None
    form = request.form
    if request.method == "POST":
        try:
            if form.get("action") == "preview":
                audit.skip()  # shows the template, stores nothing
                parts = _form_body(form)
                templates.check_parts(parts["subject"], parts["html"], parts["text"],
                                      parts["amp"])
                from scheduler.content.sources import check_sources
                parts["sources"] = check_sources(parts["sources"], c.settings.content_hosts)
                preview = _preview(parts, form)
            else:
                tid = _save(_form_body(form, _current_files(template_id)), template_id)
                flash("Template saved.", "ok")
                return redirect(url_for("ui.content.template_page", template_id=tid))
        except DomainError as exc:
            if exc.field == "template_id" or exc.field == "id":
                not_found(exc)
            flash(exc.message, "error")
            error_field = exc.field
        # What the template has is shown again, so that a second save keeps it.
        values = {**dict(form), "attachments": _current_files(template_id)}
    elif template_id is None:
        kind = "reply" if request.args.get("kind") == "reply" else "email"
        values = {"name": "", "subject": templates.REPLY_SUBJECT if kind == "reply" else "",
                  "html": "", "text": "", "amp": "", "sources": "[]", "kind": kind}
    else:
        try:
            with c.db.read() as s:
                values = templates.template_as_dict(
                    templates.get_template(s, g.team_id, template_id))
        except DomainError:
            return render_template("ui/error.html", code=404,
                                   message="No such template in your team."), 404
        values["sources"] = json.dumps(values["sources"], indent=2, ensure_ascii=False)
        values = {k: ("" if v is None else v) for k, v in values.items()}
        values["preview_data"] = _sample_data(values.get("origin"))
    with c.db.read() as s:
        # The first contacts to pick from; any other address can be typed.
        people = [(x.email, x.name) for x in contacts.list_contacts(s, g.team_id, limit=200)[0]]
    if request.method == "GET" and people:
        values["preview_to"] = people[0][0]  # a real contact, so the preview starts filled
    return render_template("ui/template.html", t=values, template_id=template_id,
                           preview=preview, error_field=error_field, people=people)


def _current_files(template_id) -> list:
    """The files the template has now (none for a new one)."""
    if template_id is None:
        return []
    with ctx().db.read() as s:
        return templates.get_template(s, g.team_id, template_id).attachments or []


@bp.post("/templates/live-preview")
@login_required
@viewer_ok
@changes_nothing
def template_live_preview():
    """JSON: the editor's current parts rendered for the chosen contact (live preview)."""
    form = request.form
    try:
        parts = _form_body(form)
        templates.check_parts(parts["subject"], parts["html"], parts["text"], parts["amp"])
        from scheduler.content.sources import check_sources
        parts["sources"] = check_sources(parts["sources"], ctx().settings.content_hosts)
        out = _preview(parts, form)
    except DomainError as exc:
        return preview_problem(exc)
    return jsonify({k: out[k] for k in ("subject", "html", "text")})


def _preview(parts: dict, form) -> dict:
    c = ctx()
    data = json_field(form, "preview_data", {})
    if not isinstance(data, dict):
        raise InvalidInput("preview data must be a JSON object", field="preview_data")
    to = form.get("preview_to", "").strip()
    best = None
    if to:
        with c.db.read() as s:
            contact = contacts.find_contact(s, g.team_id, to)
            data = {**contacts.contact_data(contact, to.lower()), **data}
            best = best_hour.best_hour_for(s, g.team_id, contact, utcnow())
    at = None
    if form.get("preview_at", "").strip():
        moment = live_images.as_of(form["preview_at"])
        if moment is None:
            raise InvalidInput("a time like 2026-12-24T18:00", field="preview_at")
        at = moment.isoformat()
    return {**templates.preview(parts, data, c.content, c.links, at), "best_hour": best}
