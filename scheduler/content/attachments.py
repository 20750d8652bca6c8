"""Attachments and inline images: files kept once per team (`stored_file`), which messages,
templates and campaigns refer to, and whose bytes are read only when a message is released.

A reference, as a row keeps it in its `attachments` list, is one of
    {"file_id": N, "filename", "content_type", "size"}   a stored file
    {"file_field": "invoice"}   the recipient's data field (or contact attribute) that
                                names a stored file by id or by file name
    {"url": "https://host/{{ order.id }}.pdf"}   fetched at send time, by the rules of
                                send-time content (allowed hosts, timeout, no redirects
                                off the host)
with an optional "cid": an inline image, shown where the HTML says `cid:<cid>`.

Gmail takes at most 25 MB of attachments in a message: more is refused when the files
are known (at save), and holds the message, saying why, when they are not (per recipient).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import mimetypes
import threading
from collections import OrderedDict
from dataclasses import dataclass
from posixpath import basename
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gmail_client.mime import Attachment
from scheduler.content import sources
from scheduler.errors import InvalidInput, NotFound
from scheduler.store import lookup
from scheduler.store.models import StoredFile

MAX_TOTAL_BYTES = 25 * 1024 * 1024
# Read files are kept for the next messages of a campaign (they never change: a changed
# file is a new row), up to this many bytes in all.
CACHE_BYTES = 64 * 1024 * 1024
_SOURCES = ("content_base64", "file_id", "file_field", "url")
_REF_KEYS = ("file_id", "file_field", "url", "filename", "content_type", "size", "cid")


class AttachmentProblem(Exception):
    """A message's files cannot be made now (a missing file, a fetch that failed, too
    much): it is held with this reason until someone fixes it."""


@dataclass(frozen=True)
class _Pending:
    """A file given as bytes in a request, stored when the request's row is."""

    filename: str
    content_type: str
    content: bytes


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def file_name(name: str) -> str:
    """A file name as it goes in a message: no folders (a recipient's mail app saves it
    under that name)."""
    return basename(name.replace("\\", "/")).strip() or "attachment"


def content_type_for(filename: str, given: str | None = None) -> str:
    """The given MIME type, else the one the file name suggests, else octet-stream."""
    return (given or mimetypes.guess_type(filename)[0] or "application/octet-stream").lower()


def decode(text: str, where: str) -> bytes:
    """Strict base64 (standard or URL-safe alphabet); 422 naming `where` otherwise."""
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where} is not base64", field=where) from None


def check(specs, allowed_hosts: tuple[str, ...], where: str = "attachments") -> list | None:
    """The references of a request's `attachments` (AttachmentSpec), checked without the
    database: base64 decoded, URLs on allowed hosts, an inline image's cid used once and
    of an image type. Bytes stay pending until `save`. None for no attachments."""
    if not specs:
        return None if specs is None else []
    refs, cids = [], set()
    for i, spec in enumerate(specs):
        at = f"{where}[{i}]"
        given = [k for k in _SOURCES if getattr(spec, k) is not None]
        if len(given) != 1:
            raise InvalidInput(f"{at}: give exactly one of {', '.join(_SOURCES)}",
                               field=f"{at}.{given[1] if given else _SOURCES[0]}")
        if spec.content_base64 is not None and not spec.filename:
            raise InvalidInput(f"{at}.filename is required with content_base64",
                               field=f"{at}.filename")
        ref: dict = {}
        if spec.content_base64 is not None:
            content = decode(spec.content_base64, f"{at}.content_base64")
            if len(content) > MAX_TOTAL_BYTES:
                raise InvalidInput(f"{at} is {_mb(len(content))}, above Gmail's 25 MB "
                                   f"for a message's attachments", field=at)
            name = file_name(spec.filename)
            ref["pending"] = _Pending(name, content_type_for(name, spec.content_type), content)
        elif spec.file_id is not None:
            ref["file_id"] = spec.file_id
        elif spec.file_field is not None:
            ref["file_field"] = spec.file_field
        else:
            ref["url"] = sources.check_url(spec.url, f"{at}.url", allowed_hosts)
        if spec.filename is not None:
            ref["filename"] = file_name(spec.filename)
        if spec.content_type is not None:
            ref["content_type"] = spec.content_type
        if spec.cid is not None:
            if spec.cid in cids:
                raise InvalidInput(f"{at}.cid {spec.cid!r} is used twice", field=f"{at}.cid")
            kind = ref.get("content_type") or (ref["pending"].content_type
                                               if "pending" in ref else None)
            if kind is not None and not kind.lower().startswith("image/"):
                raise InvalidInput(f"{at}.cid is for inline images, and {kind} is not one",
                                   field=f"{at}.cid")
            cids.add(spec.cid)
            ref["cid"] = spec.cid
        refs.append(ref)
    return refs


def store_file(session: Session, *, team_id: int, user_id: int | None, filename: str,
               content_type: str, content: bytes, now: dt.datetime) -> StoredFile:
    """The team's stored file with these bytes, name and type: an existing one (the same
    upload twice is one row), else a new one."""
    digest = hashlib.sha256(content).hexdigest()
    key = (StoredFile.team_id == team_id, StoredFile.sha256 == digest,
           StoredFile.filename == filename, StoredFile.content_type == content_type)
    found = session.scalar(select(StoredFile).where(*key))
    if found is not None:
        return found
    row = StoredFile(team_id=team_id, sha256=digest, filename=filename,
                     content_type=content_type, size=len(content), content=content,
                     created_by=user_id, created_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # another request stored the same file meanwhile
        return session.scalars(select(StoredFile).where(*key)).one()
    return row


def save(session: Session, team_id: int, user_id: int | None, refs: list | None,
         now: dt.datetime, where: str = "attachments") -> list | None:
    """References ready for a row: pending bytes stored, stored files checked to be the
    team's (with their name, type and size), the files known now within 25 MB."""
    if refs is None:
        return None
    saved, total = [], 0
    for i, ref in enumerate(refs):
        ref = dict(ref)
        pending = ref.pop("pending", None)
        if pending is not None:
            stored = store_file(session, team_id=team_id, user_id=user_id,
                                filename=pending.filename, content_type=pending.content_type,
                                content=pending.content, now=now)
            ref["file_id"] = stored.id
        if "file_id" in ref:
            try:
                stored = lookup.team_row(session, StoredFile, team_id, ref["file_id"],
                                         "file", field=f"{where}[{i}].file_id")
            except NotFound as exc:
                raise InvalidInput(exc.message, field=f"{where}[{i}].file_id") from None
            ref.setdefault("filename", stored.filename)
            ref.setdefault("content_type", stored.content_type)
            ref["size"] = stored.size
            total += stored.size
        saved.append({k: ref[k] for k in _REF_KEYS if k in ref})
    if total > MAX_TOTAL_BYTES:
        raise InvalidInput(f"{where}: {_mb(total)} of files, above Gmail's 25 MB for a "
                           f"message's attachments", field=where)
    return saved


def file_as_dict(row: StoredFile) -> dict:
    """The API representation of a stored file (never its bytes)."""
    return {"id": row.id, "filename": row.filename, "content_type": row.content_type,
            "size": row.size, "sha256": row.sha256,
            "created_at": row.created_at.isoformat() if row.created_at else None}


def list_files(session: Session, team_id: int) -> list[StoredFile]:
    """The team's stored files, newest first."""
    return list(session.scalars(select(StoredFile).where(StoredFile.team_id == team_id)
                                .order_by(StoredFile.id.desc())))


class FileReader:
    """Reads stored files' bytes at release, keeping recent ones (they never change) so a
    campaign's ten thousand messages read their shared attachment once."""

    def __init__(self, cache_bytes: int = CACHE_BYTES):
        self._cache: OrderedDict[int, tuple[int, str, str, bytes]] = OrderedDict()
        self._bytes = 0
        self._limit = cache_bytes
        self._lock = threading.Lock()

    def read(self, conn, team_id: int, file_id: int) -> tuple[str, str, bytes] | None:
        """(filename, content type, bytes) of the team's file, or None."""
        with self._lock:
            found = self._cache.get(file_id)
            if found is not None:
                self._cache.move_to_end(file_id)
        if found is None:
            row = conn.execute(select(StoredFile.team_id, StoredFile.filename,
                                      StoredFile.content_type, StoredFile.content)
                               .where(StoredFile.id == file_id)).first()
            if row is None:
                return None
            found = (row.team_id, row.filename, row.content_type, bytes(row.content))
            self._keep(file_id, found)
        owner, filename, content_type, content = found
        return (filename, content_type, content) if owner == team_id else None

    def by_name(self, conn, team_id: int, filename: str) -> int | None:
        """The id of the team's newest file with this name."""
        return conn.execute(select(StoredFile.id).where(
            StoredFile.team_id == team_id, StoredFile.filename == filename)
            .order_by(StoredFile.id.desc()).limit(1)).scalar()

    def _keep(self, file_id: int, found: tuple[int, str, str, bytes]) -> None:
        size = len(found[3])
        if size > self._limit // 4:
            return
        with self._lock:
            if file_id in self._cache:
                return
            self._cache[file_id] = found
            self._bytes += size
            while self._bytes > self._limit:
                _, old = self._cache.popitem(last=False)
                self._bytes -= len(old[3])


def _field(data: dict, path: str):
    value = data
    for name in path.split("."):
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return value


def resolve(conn, refs: list | None, data: dict, team_id: int, reader: FileReader,
            fetcher: sources.ContentFetcher) -> list[Attachment]:
    """The message's files as the MIME builder takes them, read or fetched now; raises
    AttachmentProblem naming the file when one cannot be had or they pass 25 MB."""
    out, total = [], 0
    for i, ref in enumerate(refs or ()):
        at = f"attachments[{i}]"
        name, kind = ref.get("filename"), ref.get("content_type")
        if "url" in ref:
            try:
                content, served_as, url = fetcher.fetch_file(ref["url"], data, team_id)
            except sources.ContentUnavailable as exc:
                raise AttachmentProblem(f"{at} could not be fetched: {exc}") from None
            name = name or unquote(basename(urlsplit(url).path)) or "attachment"
            kind = kind or served_as.partition(";")[0].strip() or None
        else:
            file_id = ref.get("file_id")
            if "file_field" in ref:
                value = _field(data, ref["file_field"])
                if isinstance(value, int) and not isinstance(value, bool):
                    file_id = value
                elif isinstance(value, str) and value.strip().isdigit():
                    file_id = int(value.strip())
                elif isinstance(value, str) and value.strip():
                    file_id = reader.by_name(conn, team_id, value.strip())
                if file_id is None:
                    raise AttachmentProblem(
                        f"{at}: the field {ref['file_field']} "
                        + (f"names no stored file ({str(value)[:100]!r})" if value else
                           "is empty for this recipient") + "; upload it (POST /files) or "
                        "change the data, then send now")
            found = reader.read(conn, team_id, file_id)
            if found is None:
                raise AttachmentProblem(f"{at}: stored file {file_id} is gone")
            name, kind = name or found[0], kind or found[1]
            content = found[2]
        total += len(content)
        if total > MAX_TOTAL_BYTES:
            raise AttachmentProblem(f"the attachments are {_mb(total)} or more, above "
                                    f"Gmail's 25 MB for a message")
        name = file_name(name)
        out.append(Attachment(name, content_type_for(name, kind), content, ref.get("cid")))
    return out
