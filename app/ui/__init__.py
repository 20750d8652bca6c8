"""Server-rendered pages: set-up, sign-in, the queue, compose, a message's timeline."""
from __future__ import annotations

import datetime as dt
import uuid
from email.utils import getaddresses
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (
    Blueprint,
    abort,
    g,
    request,
    session,
)
from sqlalchemy import select

from app import ctx
from app.ui import timeline
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
            "form_key": lambda: uuid.uuid4().hex,
            "nav_primary": NAV_PRIMARY, "nav_secondary": NAV_SECONDARY,
            "nav_current": _nav_current}


# The main navigation: work on the left, the team's set-up on the right.
NAV_PRIMARY = (("Queue", "ui.queue.home"), ("Dashboard", "ui.dashboard.dashboard_page"),
               ("Compose", "ui.compose.compose"), ("Replies", "ui.replies.replies_page"),
               ("Contacts", "ui.contacts.contacts_page"),
               ("Campaigns", "ui.campaigns.campaigns_page"),
               ("Schedules", "ui.schedules.schedules_page"), ("Rules", "ui.rules.rules_page"),
               ("Templates", "ui.content.templates_page"))
NAV_SECONDARY = (("Accounts", "ui.settings.accounts_page"), ("Team", "ui.team.team_page"),
                 ("Settings", "ui.settings.settings_page"))


def _nav_current(href: str) -> bool:
    """Whether the page shown is the nav link's section (a message page is the queue's)."""
    path = request.path
    if href == "/":
        return path == "/" or path.startswith("/messages/")
    return path == href or path.startswith(href.rstrip("/") + "/")


@bp.app_template_filter("timestamp_iso")
def timestamp_iso(seconds: int) -> str:
    """Unix seconds as ISO 8601 UTC (pages show it in the viewer's zone)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()


@bp.app_template_filter("when")
def when_filter(value):
    """A time as a <time> element in UTC with the zone named (the script localizes it)."""
    return timeline.when(value)


@bp.app_template_filter("sentence")
def sentence_filter(event: dict):
    """A timeline event as a sentence."""
    return timeline.sentence(event)


@bp.app_template_filter("tone")
def tone_filter(event: dict) -> str:
    return timeline.tone(event)


@bp.app_template_filter("pretty")
def pretty_filter(value, indent: int | None = 2) -> str:
    """JSON for people to read (and edit): the characters as they are, escaped as HTML by
    the template, not `tojson`'s \\u0027 forms (those are for <script>)."""
    import json
    return json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=False)


SCOPE_WORDS = (("gmail.send", "send"), ("gmail.readonly", "read (replies, bounces)"),
               ("gmail.compose", "drafts"), ("gmail.modify", "read and label"),
               ("userinfo.email", "your address"))


@bp.app_template_filter("access_words")
def access_words(scopes) -> str:
    """Granted OAuth scopes as what they let mailrelease do ("send, read, drafts")."""
    given = " ".join(scopes) if isinstance(scopes, (list, tuple)) else str(scopes or "")
    words = [word for key, word in SCOPE_WORDS if key in given]
    return ", ".join(words) or "none"


@bp.app_template_filter("origin_words")
def origin_words(origin) -> str:
    """Where a template came from, in words."""
    if not isinstance(origin, str) or not origin:
        return "written here"
    kind, _, key = origin.partition(":")
    return {"starter": f"starter ({key.replace('-', ' ')})",
            "gmail-draft": "a Gmail draft"}.get(kind, origin)


_TARGETS = {"template": ("ui.content.template_page", "template_id"),
            "contact": ("ui.contacts.contact_page", "contact_id"),
            "campaign": ("ui.queue.home", "campaign_id"), "rule": ("ui.queue.home", "rule_id"),
            "schedule": ("ui.schedules.schedules_page", None),
            "segment": ("ui.contacts.contacts_page", None)}


@bp.app_template_filter("target_link")
def target_link(target):
    """An audit entry's object ("template 3") as a link to it, where there is a page."""
    from flask import url_for
    from markupsafe import Markup
    kind, _, number = (target or "").partition(" ")
    if kind not in _TARGETS or not number.isdigit():
        return target or ""
    endpoint, arg = _TARGETS[kind]
    href = url_for(endpoint, **({arg: int(number)} if arg else {}))
    return Markup('<a href="{}">{}</a>').format(href, target)


@bp.app_template_filter("person")
def person_filter(value) -> str:
    """An address header as people read it: `Katherine "Kat" Johnson <kat@example.org>`,
    not its quoted, escaped form."""
    if not isinstance(value, str) or not value:
        return value or ""
    out = []
    for name, addr in getaddresses([value]):
        out.append(f"{name} <{addr}>" if name else addr)
    return ", ".join(out) or value


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


def refused(exc: DomainError, prefix: str = "") -> None:
    """A page action refused: the 404 page for another team's id, else the reason flashed
    (nothing was changed, so nothing goes in the audit log)."""
    from flask import flash

    from app import audit
    audit.skip()
    not_found(exc)
    flash(prefix + exc.message, "error")


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
    contacts,
    content,
    dashboard,
    guard,
    queue,
    replies,
    rules,
    schedules,
    settings,
    team,
)

FEATURES = (queue.bp, compose.bp, contacts.bp, content.bp, campaigns.bp, dashboard.bp,
            guard.bp, replies.bp, rules.bp, schedules.bp, settings.bp, team.bp)
for _feature in FEATURES:
    bp.register_blueprint(_feature)
