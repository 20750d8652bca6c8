"""`Idempotency-Key` at the Flask edge: the key of this request, and replayed answers."""
from __future__ import annotations

import hashlib

from flask import Response, g, jsonify, request
from sqlalchemy.orm import Session

from scheduler.store import idempotency
from scheduler.store.db import utcnow


def claim(session: Session, body_digest: str | None = None) -> idempotency.Claimed | None:
    """Hold this request's Idempotency-Key in `session`'s transaction (None without one).

    Raises idempotency.Replay when the key was answered before (the API blueprint turns
    it into the first answer). `body_digest` stands for a body read as a stream.
    """
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        return None
    body = body_digest if body_digest is not None else request.get_data(cache=True)
    print_ = idempotency.fingerprint(request.method, request.path,
                                     request.query_string, body)
    g.idempotency_key = True
    return idempotency.claim(session, g.team_id, idempotency.check_key(key), print_, utcnow())


def digest(stream) -> str:
    """SHA-256 of a seekable stream's content, leaving it at the start."""
    hashed = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 16), b""):
        hashed.update(chunk)
    stream.seek(0)
    return hashed.hexdigest()


def replayed(exc: idempotency.Replay) -> tuple[Response, int]:
    """The first answer again, marked as a replay (it changes nothing: no audit entry)."""
    g.audit_skip = True
    resp = jsonify(exc.body)
    resp.headers["Idempotent-Replayed"] = "true"
    return resp, exc.status


def mark_fresh(resp: Response) -> Response:
    """A first answer to a request that carried a key says it is not a replay."""
    if g.get("idempotency_key"):
        resp.headers.setdefault("Idempotent-Replayed", "false")
    return resp


FORM_FIELD = "form_key"


def form_key(form) -> tuple[str, str] | None:
    """(key, fingerprint) of a submitted form's hidden `form_key` (a double submit of one
    rendered form carries the same key), read while the request is at hand."""
    key = form.get(FORM_FIELD)
    if not key:
        return None
    fields = sorted((k, v) for k, v in form.items(multi=True)
                    if k not in ("csrf_token", FORM_FIELD))
    return f"form:{key[:200]}", idempotency.fingerprint(request.path, repr(fields))


def claim_form(session: Session, team_id: int,
               key: tuple[str, str] | None) -> idempotency.Claimed | None:
    """Hold a form's key in `session`'s transaction; Replay on a double submit."""
    if key is None:
        return None
    return idempotency.claim(session, team_id, idempotency.check_key(key[0]), key[1],
                             utcnow())
