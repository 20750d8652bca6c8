"""Contacts in the API: add one or a list, list and search, read, delete, import a CSV
(streaming progress on request)."""
from __future__ import annotations

import json
from typing import Annotated

from flask import Blueprint, Response, g, jsonify, request, stream_with_context
from pydantic import Field

from app import actor, ctx, idempotent
from app.api import Listing, responses
from app.api.endpoint import route
from app.progress import own_copy, with_progress
from scheduler import commands, sanity
from scheduler.audience import contacts, segments
from scheduler.errors import InvalidInput
from scheduler.store import idempotency, lookup
from scheduler.store.db import utcnow
from scheduler.typed import parse

bp = Blueprint("contacts", __name__)


MAX_IMPORT_BYTES = 256 * 1024 * 1024



MAX_CONTACTS_PER_POST = 10_000



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
    """?email= finds one address; ?q= searches addresses and names; ?attribute= (and
    ?value=) keeps those with that attribute."""

    email: Annotated[str, Field(max_length=320)] | None = None
    q: Annotated[str, Field(max_length=200)] | None = None
    attribute: Annotated[str, Field(max_length=200)] | None = None
    value: Annotated[str, Field(max_length=1000)] | None = None



@route(bp, "GET", "/contacts", query=ContactQuery,
       answers={200: responses.Page[responses.Contact]})
def list_contacts(query: ContactQuery):
    """The team's contacts, oldest first; `?email=` finds one address."""
    after = lookup.query_id(query.cursor, "cursor", "cursor is not one this API gave out")
    with ctx().db.read() as s:
        items, nxt = contacts.list_contacts(s, g.team_id, after=after, limit=query.limit,
                                            email=query.email, q=query.q,
                                            attribute=query.attribute, value=query.value)
        return jsonify({"items": [contacts.contact_as_dict(x) for x in items],
                        "next_cursor": str(nxt) if nxt else None})



@route(bp, "DELETE", "/contacts/<contact_id>", answers={204: None}, role="member")
def delete_contact(contact_id):
    """Delete a contact (204); its messages not yet sending are cancelled."""
    c = ctx()
    with c.db.write() as s:
        contacts.delete_contact(s, actor(), contact_id, utcnow())
    return "", 204



@route(bp, "PATCH", "/contacts/<contact_id>", body=commands.ContactChange,
       answers={200: responses.Contact}, role="member")
def change_contact(contact_id, body: commands.ContactChange):
    """Edit a contact: name, timezone, attributes (replaced as given), subscription."""
    with ctx().db.write() as s:
        return jsonify(contacts.contact_as_dict(
            contacts.change_contact(s, actor(), contact_id, body, utcnow())))


@route(bp, "POST", "/segments", body=commands.NewSegment, answers={201: responses.Segment},
       role="member")
def create_segment(body: commands.NewSegment):
    """A saved audience: `name` and `conditions` on contact fields (contact.plan ...);
    campaigns send to it with `"audience": {"segment_id": id}`."""
    with ctx().db.write() as s:
        found = segments.save_segment(s, actor(), body, utcnow())
        out = {**segments.segment_as_dict(found), **segments.count(s, g.team_id,
                                                                  found.conditions)}
    return jsonify(out), 201


@route(bp, "GET", "/segments", answers={200: responses.Page[responses.Segment]})
def list_segments():
    """The team's segments, each with how many contacts match now."""
    with ctx().db.read() as s:
        return jsonify({"items": [{**segments.segment_as_dict(x),
                                   **segments.count(s, g.team_id, x.conditions)}
                                  for x in segments.list_segments(s, g.team_id)],
                        "next_cursor": None})


@route(bp, "DELETE", "/segments/<segment_id>", answers={204: None}, role="member")
def delete_segment(segment_id):
    """Forget a segment (204)."""
    with ctx().db.write() as s:
        segments.delete_segment(s, actor(), segment_id, utcnow())
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
