"""Contacts and segments as pages: search, add, edit, delete, a contact's history, a CSV
import that shows its progress, and saved segments with their live size."""
from __future__ import annotations

import json

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from app import actor, audit, ctx
from app.api.contacts import import_with_progress
from app.audit import changes_nothing
from app.auth import login_required, viewer_ok
from app.progress import own_copy
from app.ui import json_field, refused
from scheduler.audience import contacts, segments
from scheduler.commands import ContactChange, NewContact, NewSegment
from scheduler.engine import messages
from scheduler.errors import DomainError, InvalidInput
from scheduler.store.db import utcnow
from scheduler.typed import make

bp = Blueprint("contacts", __name__)

PAGE = 100
COUNT_IN_PAGE = 50_000  # contacts up to which the page counts its segments itself
CONDITION_ROWS = 3
OPERATORS = (("equals", "is"), ("not_equals", "is not"), ("contains", "contains"),
             ("greater", "is more than"), ("less", "is less than"), ("exists", "is set"))


def _search() -> dict:
    return {k: (request.args.get(k) or "").strip() for k in ("q", "attribute", "value")}


@bp.get("/contacts")
@login_required
def contacts_page():
    """Contacts (searchable), a form to add one, the CSV import and the segments."""
    search = _search()
    try:
        after = int(request.args["after"]) if request.args.get("after") else None
    except ValueError:
        after = None
    with ctx().db.read() as s:
        items, nxt = contacts.list_contacts(s, g.team_id, after=after, limit=PAGE,
                                            q=search["q"], attribute=search["attribute"],
                                            value=search["value"])
        rows = [contacts.contact_as_dict(x) for x in items]
        everyone = segments.count(s, g.team_id, [])
        # A big team's segments are counted by the page's script, one request each, so
        # that the page itself does not wait for every count.
        counted = everyone["matching"] <= COUNT_IN_PAGE
        saved = [{**segments.segment_as_dict(x), "words": segments.describe(x.conditions),
                  **(segments.count(s, g.team_id, x.conditions) if counted else {})}
                 for x in segments.list_segments(s, g.team_id)]
    return render_template("ui/contacts.html", rows=rows, next_after=nxt, search=search,
                           segments=saved, everyone=everyone, operators=OPERATORS,
                           condition_rows=CONDITION_ROWS,
                           form=request.args if request.args.get("new") else {})


@bp.post("/contacts/new")
@login_required
def add_contact():
    """Add one contact from the page (an address already known is updated)."""
    form = request.form
    try:
        command = make(NewContact, email=form.get("email", ""),
                       name=form.get("name") or None, timezone=form.get("timezone") or None,
                       attributes=json_field(form, "attributes", {}))
        with ctx().db.write() as s:
            report, stored = contacts.add_contacts(s, g.team_id, [command], utcnow(), actor())
            contact_id = stored[0].id
    except DomainError as exc:
        audit.skip()
        flash(f"Not added: {exc.message}", "error")
        return render_template("ui/contact_new.html", form=form, error_field=exc.field), \
            exc.status
    flash("Contact added." if report.imported else "That address was known: contact updated.",
          "ok")
    return redirect(url_for("ui.contacts.contact_page", contact_id=contact_id))


@bp.get("/contacts/new")
@login_required
def new_contact_page():
    """The form to add one contact."""
    return render_template("ui/contact_new.html", form={}, error_field=None)


@bp.get("/contacts/<int:contact_id>")
@login_required
def contact_page(contact_id):
    """A contact: their fields (editable), subscription, messages, engagement, events."""
    with ctx().db.read() as s:
        try:
            contact = contacts.get_contact(s, g.team_id, contact_id)
        except DomainError:
            return render_template("ui/error.html", code=404,
                                   message="No such contact in your team."), 404
        seen = contacts.history(s, contact)
        row = contacts.contact_as_dict(contact)
        row["subscription_reason"] = contact.subscription_reason
        row["subscription_changed_at"] = contact.subscription_changed_at
        sent = [messages.message_as_dict(m) for m in seen["messages"]]
        evts = [{"name": e.name, "at": e.received_at.isoformat(), "id": e.external_id,
                 "data": e.data, "answer": e.response} for e in seen["events"]]
    return render_template("ui/contact.html", c=row, messages=sent, events=evts,
                           totals=seen["totals"], error_field=None)


@bp.post("/contacts/<int:contact_id>")
@login_required
def edit_contact(contact_id):
    """Save a contact's name, time zone, attributes and subscription."""
    form = request.form
    try:
        change = make(ContactChange, name=form.get("name", ""),
                      timezone=form.get("timezone") or None,
                      attributes=json_field(form, "attributes", {}),
                      subscription=form.get("subscription") or None)
        with ctx().db.write() as s:
            contacts.change_contact(s, actor(), contact_id, change, utcnow())
    except DomainError as exc:
        refused(exc, "Not saved: ")
    else:
        flash("Contact saved.", "ok")
    return redirect(url_for("ui.contacts.contact_page", contact_id=contact_id))


@bp.post("/contacts/<int:contact_id>/delete")
@login_required
def delete_contact(contact_id):
    """Delete a contact; their messages not yet sending are cancelled."""
    try:
        with ctx().db.write() as s:
            cancelled = contacts.delete_contact(s, actor(), contact_id, utcnow())
    except DomainError as exc:
        refused(exc)
    else:
        n = len(cancelled)
        flash(f"Contact deleted; {n} message{'s' if n != 1 else ''} not yet sent "
              f"{'were' if n != 1 else 'was'} cancelled.", "ok")
    return redirect(url_for("ui.contacts.contacts_page"))


@bp.post("/contacts/import")
@login_required
def import_contacts_page():
    """Import the uploaded CSV: a page with the report, or (from the page's script) a
    stream of progress lines."""
    c = ctx()
    request.max_content_length = 256 * 1024 * 1024
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a CSV file to import.", "error")
        return redirect(url_for("ui.contacts.contacts_page"))
    team_id, now, who = g.team_id, utcnow(), actor()
    if "application/x-ndjson" in request.headers.get("Accept", ""):
        data = own_copy(upload.stream)

        def lines():
            try:
                for item in import_with_progress(c.db, team_id, data, now, who):
                    yield json.dumps(item) + "\n"
            except InvalidInput as exc:
                yield json.dumps({"error": {"message": exc.message}}) + "\n"
            finally:
                data.close()
        return Response(stream_with_context(lines()), mimetype="application/x-ndjson")
    try:
        report = contacts.import_csv(c.db, team_id, upload.stream, now, actor=who).as_dict()
    except InvalidInput as exc:
        flash(exc.message, "error")
        return redirect(url_for("ui.contacts.contacts_page"))
    flash(import_summary(report), "ok")
    for line in report_lines(report):
        flash(line, "warning")
    return redirect(url_for("ui.contacts.contacts_page"))


def import_summary(report: dict) -> str:
    """'Imported 3, updated 1, merged 1, rejected 0.'"""
    return (f"Imported {report['imported']}, updated {report['updated']}, "
            f"merged {len(report.get('merged', []))}, rejected {len(report['rejected'])}.")


def report_lines(report: dict, most: int = 50) -> list[str]:
    """Each rejected or merged row, by row number (the first `most`)."""
    lines = [f"Row {r['row']}: {r['error']}" for r in report["rejected"]]
    lines += [f"Row {m['row']}: same address as row {m['same_as_row']} ({m['email']}); "
              f"merged into it, its values win" for m in report.get("merged", [])]
    return lines[:most]


def _conditions(form) -> list[dict]:
    """The segment form's condition rows (field, operator, value), the empty ones left out."""
    out = []
    for i in range(CONDITION_ROWS):
        name = (form.get(f"field_{i}") or "").strip().removeprefix("contact.")
        if not name:
            continue
        op = form.get(f"op_{i}") or "equals"
        item = {"field": f"contact.{name}", "op": op}
        if op != "exists":
            item["value"] = form.get(f"value_{i}", "")
        out.append(item)
    return out


@bp.post("/segments")
@login_required
def save_segment():
    """Save a segment (a name and its conditions), or change one (`segment_id`)."""
    form = request.form
    try:
        command = make(NewSegment, name=form.get("name", ""), conditions=_conditions(form))
        with ctx().db.write() as s:
            saved = segments.save_segment(s, actor(), command, utcnow(),
                                          form.get("segment_id") or None)
            name = saved.name
    except DomainError as exc:
        refused(exc, "Segment not saved: ")
    else:
        flash(f"Segment {name} saved.", "ok")
    return redirect(url_for("ui.contacts.contacts_page") + "#segments")


@bp.post("/segments/<int:segment_id>/delete")
@login_required
def delete_segment(segment_id):
    """Forget a segment."""
    try:
        with ctx().db.write() as s:
            segments.delete_segment(s, actor(), segment_id, utcnow())
    except DomainError as exc:
        refused(exc)
    else:
        flash("Segment deleted.", "ok")
    return redirect(url_for("ui.contacts.contacts_page") + "#segments")


@bp.post("/segments/count")
@login_required
@viewer_ok
@changes_nothing
def count_audience():
    """JSON: how many contacts an audience reaches now: a saved segment (`segment_id`),
    the condition rows of the segment form, or every contact."""
    form = request.form
    try:
        with ctx().db.read() as s:
            if form.get("segment_id"):
                found = segments.get_segment(s, g.team_id, form["segment_id"])
                conditions, words = found.conditions, segments.describe(found.conditions)
            else:
                conditions = segments.checked_conditions(make(
                    NewSegment, name="count", conditions=_conditions(form)))
                words = segments.describe(conditions)
            counted = segments.count(s, g.team_id, conditions)
    except DomainError as exc:
        return jsonify({"error": {"message": exc.message, "field": exc.field}}), \
            404 if exc.status == 404 else 200
    return jsonify({**counted, "words": words})
