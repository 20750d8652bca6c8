"""Server-rendered pages: set-up, sign-in, the queue, compose, a message's timeline."""
from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (
    Blueprint,
    abort,
    g,
    session,
)
from sqlalchemy import select

from app import ctx
from scheduler import sanity
from scheduler.audience import teams
from scheduler.errors import DomainError, InvalidInput
from scheduler.store.models import MESSAGE_STATUSES, GmailAccount

bp = Blueprint("ui", __name__)


def sender_accounts(team_id: int) -> list[GmailAccount]:
    with ctx().db.read() as s:
        return list(s.scalars(select(GmailAccount).where(GmailAccount.team_id == team_id)
                              .order_by(GmailAccount.id)))


@bp.app_context_processor
def _globals():
    settings = ctx().settings
    mine = []
    if "user_id" in session:
        with ctx().db.read() as s:
            mine = teams.teams_of(s, session["user_id"])
    return {"signed_in_as": session.get("email"), "sandbox": settings.sandbox,
            "statuses": MESSAGE_STATUSES, "my_teams": mine,
            "current_team": session.get("team_id"), "role": g.get("role"),
            # A fresh key for each rendered form that creates mail: a double submit of the
            # same form is recognised (app/idempotent.py) and queues nothing twice.
            "form_key": lambda: uuid.uuid4().hex}


@bp.app_template_filter("timestamp_iso")
def timestamp_iso(seconds: int) -> str:
    """Unix seconds as ISO 8601 UTC (pages show it in the viewer's zone)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()


def preview_problem(exc: DomainError):
    """A live preview's answer when the form cannot be rendered yet: 200 with the reason
    (while someone types, a missing subject is a state of the form, not a failed request)."""
    from flask import jsonify
    # Not there (or another team's) is still a 404, as for the page itself.
    return jsonify({"error": {"message": exc.message, "field": exc.field}}), (
        404 if exc.status == 404 else 200)


def not_found(exc: DomainError) -> None:
    """A page action on an id that is not the team's: the 404 page (never a redirect
    with a message, which would say the same as for an id that exists)."""
    if exc.status == 404:
        abort(404, exc.message)


def same_origin_path(target: str) -> str | None:
    """`target` if it is a path on this site, else None (never an open redirect).

    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so
    `/\t/evil.example` and `/\\evil.example` leave the site: judged after that cleaning.
    """
    cleaned = "".join(c for c in target if c not in "\t\r\n").replace("\\", "/")
    if (not cleaned.startswith("/") or cleaned.startswith("//")
            or any(ord(c) < 32 for c in cleaned) or urlsplit(cleaned).netloc):
        return None
    return cleaned


def json_field(form, name: str, default):
    """A form field holding JSON, `default` when empty; a 4xx naming the field if invalid."""
    raw = form.get(name, "").strip()
    if not raw:
        return default
    try:
        return sanity.loads(raw, name)
    except sanity.Malformed as exc:
        raise InvalidInput(exc.message, field=name) from None


def local_send_at(form) -> str | None:
    """The form's wall-clock time in the viewer's zone, as ISO 8601 with its offset."""
    if form.get("when") != "at":
        return None
    value = form.get("send_at_local", "").strip()
    if not value:
        raise InvalidInput("choose a date and time, or send now", field="send_at")
    try:
        zone = ZoneInfo(form.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("unknown time zone", field="timezone") from None
    try:
        local = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("the date and time are not valid", field="send_at") from None
    return local.replace(tzinfo=zone).isoformat()




# One blueprint per feature, nested under this one (which gives them the layout's globals).
from app.ui import (  # noqa: E402
    campaigns,
    compose,
    content,
    dashboard,
    guard,
    queue,
    replies,
    rules,
    settings,
    team,
)

FEATURES = (queue.bp, compose.bp, content.bp, campaigns.bp, dashboard.bp, guard.bp,
            replies.bp, rules.bp, settings.bp, team.bp)
for _feature in FEATURES:
    bp.register_blueprint(_feature)
