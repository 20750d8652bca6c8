"""Contacts: add one or a list, import a CSV in a stream, list."""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from sqlalchemy import ARRAY, String, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from scheduler import addresses, sanity
from scheduler.commands import ContactChange, NewContact
from scheduler.errors import InvalidInput
from scheduler.store import audit, lookup, queue
from scheduler.store.audit import Actor
from scheduler.store.db import Database
from scheduler.store.models import Contact, Event, Message
from scheduler.typed import is_zone

BATCH_ROWS = 1000
MAX_ATTRIBUTES_CHARS = 20_000
# Header spellings spreadsheets use for the three known columns (compared lower-cased,
# spaces, '-' and '_' removed); every other column becomes an attribute.
_EMAIL_HEADERS = {"email", "emailaddress", "mail"}
_NAME_HEADERS = {"name", "fullname"}
_TZ_HEADERS = {"timezone", "tz"}


class RowError(ValueError):
    """One contact's problem, named for the caller's report."""


def normalize_email(value) -> str:
    """A valid address, in ASCII form and lower-cased; RowError otherwise."""
    try:
        return addresses.normalize_email(value)
    except addresses.AddressError as exc:
        raise RowError(str(exc)) from None


def normalize_timezone(value) -> str | None:
    """An IANA time zone name (checked against tzdata), or None when blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not is_zone(value.strip()):
        raise RowError(f"timezone {value!r} is not an IANA time zone (like Europe/Paris)")
    return value.strip()


@dataclass
class ContactInput:
    """A checked contact before it is stored."""

    email: str
    name: str | None = None
    timezone: str | None = None
    attributes: dict = field(default_factory=dict)
    subscription: str | None = None


@dataclass
class Report:
    """What an import or a POST did: counts and every rejected row."""

    imported: int = 0
    updated: int = 0
    rejected: list[dict] = field(default_factory=list)
    # Rows repeating an address met earlier in the same file: merged into it (later
    # values win, attributes merge), and named so that nobody wonders where a row went.
    merged: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"imported": self.imported, "updated": self.updated, "rejected": self.rejected,
                "merged": self.merged}

    def counts(self) -> dict:
        """The numbers alone (the audit log keeps no addresses)."""
        return {"imported": self.imported, "updated": self.updated,
                "rejected": len(self.rejected), "merged": len(self.merged)}


def _known(session: Session, team_id: int, emails: list[str]):
    """The team's contacts among these addresses.

    On PostgreSQL a join to the addresses as an array, so that each is one probe of the
    (team, email) index: `email IN (1,000 parameters)` is a filter the planner may run
    against every contact of the team (it did, once an import outgrew the statistics),
    and an import then slows down as it grows.
    """
    if session.get_bind().dialect.name != "postgresql":
        return select(Contact).where(Contact.team_id == team_id, Contact.email.in_(emails))
    wanted = func.unnest(bindparam("emails", emails, type_=ARRAY(String))).table_valued(
        "email").render_derived()
    return (select(Contact).join(wanted, Contact.email == wanted.c.email)
            .where(Contact.team_id == team_id))


def _store(session: Session, team_id: int, batch: dict[str, ContactInput],
           now: dt.datetime, report: Report, rows: bool = True) -> list[Contact]:
    """Insert new addresses and update known ones; a later value wins, attributes merge.

    With `rows` False (an import, which answers counts only) the new contacts are
    inserted with one executemany and not returned, a third of an import's time saved.
    """
    existing = {c.email: c for c in session.scalars(_known(session, team_id, list(batch)))}
    fresh, changes = [], []
    for email, item in batch.items():
        known = existing.get(email)
        if known is None:
            fresh.append({"team_id": team_id, "email": email, "name": item.name,
                          "timezone": item.timezone, "attributes": item.attributes,
                          "subscription": item.subscription or "subscribed",
                          "created_at": now, "updated_at": now})
            continue
        values = {"id": known.id, "updated_at": now,
                  "attributes": {**(known.attributes or {}), **item.attributes},
                  "name": item.name or known.name, "timezone": item.timezone or known.timezone,
                  "subscription": item.subscription or known.subscription}
        changes.append(values)
    new_rows = [Contact(**values) for values in fresh] if rows else []
    if new_rows:
        session.add_all(new_rows)
        session.flush()
    elif fresh:
        session.execute(insert(Contact), fresh)
    if changes:
        session.execute(update(Contact), changes)
    report.imported += len(fresh)
    report.updated += len(changes)
    return new_rows + list(existing.values())


def add_contacts(session: Session, team_id: int, items: list[NewContact],
                 now: dt.datetime, actor: Actor | None = None) -> tuple[Report, list[Contact]]:
    """POST /contacts: checked contacts, stored all together; a later entry for the same
    address updates the earlier one."""
    batch: dict[str, ContactInput] = {}
    for item in items:
        checked = ContactInput(item.email, (item.name or "").strip() or None, item.timezone,
                               dict(item.attributes), item.subscription)
        if checked.email in batch:  # a later entry for the same address updates it
            earlier = batch[checked.email]
            checked.attributes = {**earlier.attributes, **checked.attributes}
            checked.name = checked.name or earlier.name
            checked.timezone = checked.timezone or earlier.timezone
        batch[checked.email] = checked
    report = Report()
    stored = _store(session, team_id, batch, now, report)
    by_email = {c.email: c for c in stored}
    session.flush()
    audit.record(session, actor, "added contacts", None, report.counts(), now)
    return report, [by_email[e] for e in batch]


def _header_kind(name: str) -> str:
    key = name.strip().lower().replace(" ", "").replace("-", "").replace("_", "")
    if key in _EMAIL_HEADERS:
        return "email"
    if key in _NAME_HEADERS:
        return "name"
    if key in _TZ_HEADERS:
        return "timezone"
    return "attribute"


class CountingReader(io.RawIOBase):
    """Wraps a binary stream and counts the bytes read (for progress bars)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.bytes_read += n
        return n


def _rows(stream: BinaryIO) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(spreadsheet row number, fields or None, error) for each record after the header.

    UTF-8 with or without BOM. Bytes that are not UTF-8 reject their row, not the file.
    Quoted fields may hold commas, quotes and line breaks; a record is one row as a
    spreadsheet shows it, so the header is row 1 and numbers count records, not lines.
    """
    raw = stream if isinstance(stream, CountingReader) else CountingReader(stream)
    text = io.TextIOWrapper(io.BufferedReader(raw, 1 << 16), encoding="utf-8-sig",
                            errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=True)
    row_number = 0
    while True:
        row_number += 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield row_number, None, f"not valid CSV: {exc}"
            continue
        yield row_number, fields, None


def import_csv(db: Database, team_id: int, stream: BinaryIO, now: dt.datetime,
               progress: Callable[[int], None] | None = None,
               actor: Actor | None = None) -> Report:
    """Stream a CSV into the team's contacts, a batch per transaction.

    Each row is imported, updates an earlier one, or is rejected with its row number and
    reason; a rejected row writes nothing. InvalidInput (422) when the header is unusable.
    The audit entry (with an `actor`) goes with the last batch, counting them all.
    """
    report = Report()
    rows = _rows(stream)
    try:
        _, header, header_error = next(rows)
    except StopIteration:
        raise InvalidInput("the CSV is empty: the first row must name the columns",
                           field="file") from None
    if header_error or not header:
        raise InvalidInput(f"row 1: {header_error or 'the header row is empty'}", field="file")
    if any(_has_bad_bytes(h) for h in header):
        raise InvalidInput("row 1: the file is not UTF-8", field="file")
    kinds = [_header_kind(h) for h in header]
    if kinds.count("email") != 1:
        raise InvalidInput("row 1: the header needs exactly one email column (email, "
                           "e-mail or email address)", field="file")
    names = [h.strip() for h in header]
    batch: dict[str, ContactInput] = {}
    first_row: dict[str, int] = {}  # each address's first row in the file
    seen = 0
    for number, fields, problem in rows:
        seen += 1
        if problem is None and fields is not None:
            if not any(f.strip() for f in fields):
                continue  # a blank line between rows
            try:
                item = _from_fields(fields, kinds, names)
            except RowError as exc:
                problem = str(exc)
        if problem is not None:
            report.rejected.append({"row": number, "error": problem})
        else:
            if item.email in first_row:
                report.merged.append({"row": number, "same_as_row": first_row[item.email],
                                      "email": item.email})
            else:
                first_row[item.email] = number
            earlier = batch.get(item.email)
            if earlier is not None:
                item.attributes = {**earlier.attributes, **item.attributes}
                item.name = item.name or earlier.name
                item.timezone = item.timezone or earlier.timezone
            batch[item.email] = item
        if len(batch) >= BATCH_ROWS:
            with db.write() as session:
                _store(session, team_id, batch, now, report, rows=False)
            batch = {}
        if progress is not None and seen % BATCH_ROWS == 0:
            progress(seen)
    with db.write() as session:
        if batch:
            _store(session, team_id, batch, now, report, rows=False)
        audit.record(session, actor, "imported contacts", None, report.counts(), now)
    if progress is not None:
        progress(seen)
    return report


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _from_fields(fields: list[str], kinds: list[str], names: list[str]) -> ContactInput:
    if len(fields) > len(kinds) and any(f.strip() for f in fields[len(kinds):]):
        raise RowError(f"{len(fields)} fields but the header names {len(kinds)} columns")
    if any(_has_bad_bytes(f) for f in fields):
        raise RowError("not valid UTF-8")
    for name, value in zip(names, fields, strict=False):  # a short row: missing cells
        why = sanity.bad_text(value)  # the rule JSON bodies follow too
        if why:
            raise RowError(f"{name} {why}")
    item = ContactInput(email="")
    email = None
    for kind, name, value in zip(kinds, names, fields, strict=False):
        value = value.strip()
        if kind == "email":
            email = value
        elif kind == "name":
            if len(value) > 300:
                raise RowError("name is longer than 300 characters")
            if "\r" in value or "\n" in value:
                raise RowError("name must be one line (it goes into the To header)")
            item.name = value or None
        elif kind == "timezone":
            item.timezone = normalize_timezone(value)
        elif value:
            item.attributes[name] = value
    item.email = normalize_email(email)
    return item


def list_contacts(session: Session, team_id: int, *, after: int | None = None,
                  limit: int = 100, email: str | None = None, q: str | None = None,
                  attribute: str | None = None,
                  value: str | None = None) -> tuple[list[Contact], int | None]:
    """Oldest first, keyset-paginated by id; returns (items, next cursor).

    `email` finds one address; `q` is text in the address or the name; `attribute`
    (with an optional `value`) keeps contacts having that attribute (equal to it).
    """
    query = select(Contact).where(Contact.team_id == team_id)
    if email:
        query = query.where(Contact.email == email.strip().lower())
    text = (q or "").strip().lower()
    if text:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(Contact.email.like(like, escape="\\")
                            | func.lower(Contact.name).like(like, escape="\\"))
    if attribute and attribute.strip():
        held = Contact.attributes[attribute.strip()]
        query = query.where(held.as_string() == value if value not in (None, "")
                            else held.is_not(None))
    if after is not None:
        query = query.where(Contact.id > after)
    rows = list(session.scalars(query.order_by(Contact.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def ensure_contact(session: Session, team_id: int, email: str, now: dt.datetime) -> Contact:
    """The team's contact for a normalized address, created if new.

    An upsert (INSERT ... ON CONFLICT DO NOTHING, then a read) on both databases: two
    requests for the same new address at once both get the one row, never an error.
    """
    insert = (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)
    session.execute(insert(Contact).values(
        team_id=team_id, email=email, attributes={}, subscription="subscribed",
        created_at=now, updated_at=now).on_conflict_do_nothing(
        index_elements=["team_id", "email"]))
    return session.scalars(select(Contact).where(Contact.team_id == team_id,
                                                 Contact.email == email)).one()


def delete_contact(session: Session, actor: Actor, contact_id, now: dt.datetime) -> list[str]:
    """Delete the team's contact; its messages not yet sending are cancelled (their
    history stays, without the contact). Returns the cancelled message ids."""
    team_id, by = actor.team_id, actor.by
    contact = get_contact(session, team_id, contact_id)
    ids = session.scalars(select(Message.id).where(
        Message.team_id == team_id, Message.contact_id == contact.id,
        Message.status.in_(queue.OPEN_STATUSES))).all()
    cancelled = [mid for mid in ids if queue.transition(
        session, mid, team_id, "cancel", now, {"by": by, "reason": "the contact was deleted"},
        lease_until=None, hold_until=None)]
    session.delete(contact)
    session.flush()
    audit.record(session, actor, "deleted a contact", f"contact {contact.id}",
                 {"cancelled": len(cancelled)} if cancelled else None, now)
    return cancelled


def change_contact(session: Session, actor: Actor, contact_id, change: ContactChange,
                   now: dt.datetime) -> Contact:
    """Edit a contact's name, time zone, attributes (replaced as given) or subscription."""
    contact = get_contact(session, actor.team_id, contact_id)
    given = change.model_dump(exclude_unset=True)
    if "name" in given:
        contact.name = (given["name"] or "").strip() or None
    if "timezone" in given:
        contact.timezone = given["timezone"]
    if "attributes" in given:
        contact.attributes = dict(given["attributes"] or {})
    if given.get("subscription") and given["subscription"] != contact.subscription:
        contact.subscription = given["subscription"]
        contact.subscription_reason = f"set by {actor.by}"
        contact.subscription_changed_at = now
    contact.updated_at = now
    session.flush()
    audit.record(session, actor, "changed a contact", f"contact {contact.id}",
                 {"fields": sorted(given)}, now)
    return contact


HISTORY_LIMIT = 50


def history(session: Session, contact: Contact) -> dict:
    """What happened with a contact: their latest messages, engagement totals and events."""
    shown = list(session.scalars(select(Message).where(
        Message.team_id == contact.team_id, Message.contact_id == contact.id)
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(HISTORY_LIMIT)))
    totals = session.execute(select(
        func.count(), func.coalesce(func.sum(Message.opens), 0),
        func.coalesce(func.sum(Message.clicks), 0),
        func.count(Message.sent_at)).where(
        Message.team_id == contact.team_id, Message.contact_id == contact.id)).one()
    evts = list(session.scalars(select(Event).where(
        Event.team_id == contact.team_id, Event.email == contact.email)
        .order_by(Event.received_at.desc()).limit(HISTORY_LIMIT)))
    return {"messages": shown, "events": evts,
            "totals": {"messages": totals[0], "opens": int(totals[1]),
                       "clicks": int(totals[2]), "sent": totals[3]}}


def get_contact(session: Session, team_id: int, contact_id) -> Contact:
    """The team's contact, or NotFound."""
    return lookup.team_row(session, Contact, team_id, contact_id, "contact")


def contact_as_dict(contact: Contact) -> dict:
    """The API representation."""
    return {"id": contact.id, "email": contact.email, "name": contact.name,
            "timezone": contact.timezone, "attributes": contact.attributes or {},
            "subscription": contact.subscription,
            "created_at": contact.created_at.isoformat(),
            "updated_at": contact.updated_at.isoformat()}


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
