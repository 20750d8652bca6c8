"""REST API for content: templates, starter templates, Gmail drafts, contacts.

Routes live on the API blueprint (app.api.bp), with its authentication and error shape.
"""
from __future__ import annotations

import json

from flask import Response, g, jsonify, request, stream_with_context

from app import ctx, idempotent
from app.api import bp, json_body, page_limit, require_token
from app.progress import own_copy, with_progress
from scheduler import contacts, drafts, idempotency, lookup, sanity, starters, templates
from scheduler.db import utcnow
from scheduler.errors import InvalidInput
from scheduler.models import GmailAccount

MAX_IMPORT_BYTES = 256 * 1024 * 1024


# -- templates ---------------------------------------------------------------------------

def _template_body(body: dict) -> tuple[dict, str | None]:
    """A body with `starter` is that starter's content, overridden by what else is sent."""
    key = body.get("starter")
    if key is None:
        return body, None
    found = starters.starter(key)
    merged = {**starters.template_body(found), **{k: v for k, v in body.items() if k != "starter"}}
    return merged, f"starter:{key}"


@bp.post("/templates")
@require_token
def create_template():
    """Save a template (201); a syntax error is a 422 naming the part and line."""
    c = ctx()
    body, origin = _template_body(json_body())
    with c.db.write() as s:
        held = idempotent.claim(s)
        template = templates.create_template(
            s, team_id=g.team_id, user_id=g.user_id, body=body,
            allowed_hosts=c.settings.content_hosts, now=utcnow(), origin=origin)
        s.flush()
        out = templates.template_as_dict(template)
        idempotency.remember(s, held, 201, out)
    return jsonify(out), 201


@bp.get("/templates")
@require_token
def list_templates():
    """The team's templates (`?kind=reply`: the saved replies)."""
    with ctx().db.read() as s:
        return jsonify({"items": [templates.template_as_dict(t) for t in
                                  templates.list_templates(s, g.team_id,
                                                           request.args.get("kind"))],
                        "next_cursor": None})


@bp.get("/templates/<template_id>")
@require_token
def get_template(template_id):
    """One template."""
    with ctx().db.read() as s:
        return jsonify(templates.template_as_dict(
            templates.get_template(s, g.team_id, template_id)))


@bp.put("/templates/<template_id>")
@require_token
def update_template(template_id):
    """Change a template; queued messages keep the content they were queued with."""
    c = ctx()
    body = json_body()
    with c.db.write() as s:
        template = templates.update_template(s, g.team_id, template_id, body,
                                             c.settings.content_hosts, utcnow())
        return jsonify(templates.template_as_dict(template))


@bp.delete("/templates/<template_id>")
@require_token
def delete_template(template_id):
    """Delete a template (204)."""
    with ctx().db.write() as s:
        templates.delete_template(s, g.team_id, template_id)
    return "", 204


def _preview_data(s, body: dict) -> dict:
    data = body.get("data") or {}
    if not isinstance(data, dict):
        raise InvalidInput("data must be an object", field="data")
    to = body.get("to")
    if to is None:
        return data
    from scheduler.messages import parse_address
    _, recipient = templates.recipient(s, g.team_id, parse_address(to, "to"))
    return {**recipient, **data}


@bp.post("/templates/<template_id>/preview")
@require_token
def preview_template(template_id):
    """Every part rendered for a contact (`to`) and/or `data`, send-time content included."""
    c = ctx()
    body = json_body()
    with c.db.read() as s:
        template = templates.get_template(s, g.team_id, template_id)
        parts = templates.template_as_dict(template)
        data = _preview_data(s, body)
        best = _best_hour(s, body)
    return jsonify({**templates.preview(parts, data, c.content), **best})


def _best_hour(s, body: dict) -> dict:
    """With `to`: when best_hour would send to them, and the reason."""
    if not isinstance(body.get("to"), str):
        return {}
    from scheduler.messages import best_hour_for, parse_address
    address = parse_address(body["to"], "to").addr_spec
    return {"best_hour": best_hour_for(s, g.team_id, address, utcnow())}


@bp.post("/templates/preview")
@require_token
def preview_inline():
    """Preview content that is not saved yet (`subject`, `html`, ... plus `to`/`data`)."""
    c = ctx()
    body = json_body()
    parts = {k: body.get(k) for k in ("subject", "html", "text", "amp")}
    for required in ("subject", "html"):
        if not isinstance(parts[required], str) or not parts[required].strip():
            raise InvalidInput(f"{required} is required", field=required)
    templates.check_parts(parts["subject"], parts["html"], parts["text"], parts["amp"])
    from scheduler.content import check_sources
    parts["sources"] = check_sources(body.get("sources"), c.settings.content_hosts)
    with c.db.read() as s:
        data = _preview_data(s, body)
        best = _best_hour(s, body)
    return jsonify({**templates.preview(parts, data, c.content), **best})


@bp.get("/starter-templates")
@require_token
def list_starters():
    """The starter templates that ship with mailrelease (load one with POST /templates
    {"starter": key})."""
    return jsonify({"items": list(starters.starters().values()), "next_cursor": None})


# -- Gmail drafts ------------------------------------------------------------------------

def _account(s, address: str | None) -> GmailAccount:
    from scheduler.messages import pick_sender
    return pick_sender(s, g.team_id, g.user_id, address)[0]


@bp.get("/gmail/drafts")
@require_token
def list_gmail_drafts():
    """The sending account's newest Gmail drafts, with the placeholders each uses."""
    c = ctx()
    with c.db.read() as s:
        account = _account(s, request.args.get("account"))
        s.expunge(account)
    service = drafts.open_service(c.settings, c.cipher, account)
    items = drafts.list_drafts(service)
    with c.db.write() as s:
        drafts.save_refresh(s, c.cipher, account, service, utcnow())
    return jsonify({"items": items, "next_cursor": None})


@bp.post("/templates/from-draft")
@require_token
def template_from_draft():
    """Make a template of a Gmail draft: `draft_id`, optional `name`, `account`."""
    c = ctx()
    body = json_body()
    with c.db.read() as s:
        account = _account(s, body.get("account"))
        s.expunge(account)
    service = drafts.open_service(c.settings, c.cipher, account)
    parts = drafts.read_draft(service, body.get("draft_id"))
    name = body.get("name") or parts["subject"] or f"Gmail draft {body['draft_id']}"
    with c.db.write() as s:
        drafts.save_refresh(s, c.cipher, account, service, utcnow())
        template = templates.create_template(
            s, team_id=g.team_id, user_id=g.user_id,
            body={"name": name, **parts, "transactional": bool(body.get("transactional"))},
            allowed_hosts=c.settings.content_hosts, now=utcnow(),
            origin=f"gmail-draft:{body['draft_id']}")
        s.flush()
        out = templates.template_as_dict(template)
    out["placeholders"] = sorted(drafts.placeholders(parts))
    return jsonify(out), 201


# -- contacts ----------------------------------------------------------------------------

@bp.post("/contacts")
@require_token
def add_contacts():
    """One contact or a list; a later entry for a known address updates it. All or none."""
    c = ctx()
    if not request.is_json:
        raise InvalidInput("send JSON (one contact or a list), or CSV to /contacts/import")
    body = sanity.loads(request.get_data(cache=True))
    with c.db.write() as s:
        held = idempotent.claim(s)
        report, stored = contacts.add_contacts(s, g.team_id, body, utcnow())
        out = {**report.as_dict(), "items": [contacts.contact_as_dict(x) for x in stored]}
        status = 201 if report.imported else 200
        idempotency.remember(s, held, status, out)
    return jsonify(out), status


@bp.get("/contacts")
@require_token
def list_contacts():
    """The team's contacts, oldest first; `?email=` finds one address."""
    cursor = request.args.get("cursor")
    after = lookup.query_id(cursor, "cursor", "cursor is not one this API gave out")
    with ctx().db.read() as s:
        items, nxt = contacts.list_contacts(s, g.team_id, after=after, limit=page_limit(),
                                            email=request.args.get("email"))
        return jsonify({"items": [contacts.contact_as_dict(x) for x in items],
                        "next_cursor": str(nxt) if nxt else None})


@bp.delete("/contacts/<contact_id>")
@require_token
def delete_contact(contact_id):
    """Delete a contact (204); its messages not yet sending are cancelled."""
    c = ctx()
    with c.db.write() as s:
        contacts.delete_contact(s, g.team_id, contact_id, utcnow(), f"api:{g.user_id}")
    return "", 204


@bp.get("/contacts/<contact_id>")
@require_token
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


@bp.post("/contacts/import")
@require_token
def import_contacts():
    """Import a CSV: {"imported", "updated", "rejected": [{"row", "error"}]}.

    With `Accept: application/x-ndjson` the answer streams progress lines
    ({"rows": n}) while it works, then the report as the last line.
    """
    c = ctx()
    stream = import_stream()
    team_id, now = g.team_id, utcnow()
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
            report = contacts.import_csv(c.db, team_id, stream, now).as_dict()
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
            for item in import_with_progress(c.db, team_id, data, now):
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


def import_with_progress(db, team_id, stream, now):
    """Run an import on a thread; yield {"rows": n} as it goes, then the report."""
    return with_progress(
        lambda progress: contacts.import_csv(db, team_id, stream, now,
                                             progress=progress).as_dict(), "rows")
