"""The queue pages: home (set-up, sign-in or the queue), a message's timeline, and the
actions on one message (cancel, edit, send now)."""
from __future__ import annotations

import hashlib
from functools import partial

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from app import actor, audit, ctx
from app.auth import login_required, redirect_uri
from app.ui import json_field, local_send_at, not_found, same_origin_path, sender_accounts
from gmail_client.oauth import CredentialsFileError
from scheduler.commands import MessageChange
from scheduler.engine import cancelling, messages
from scheduler.errors import DomainError, InvalidInput
from scheduler.store.db import utcnow
from scheduler.typed import make

bp = Blueprint("queue", __name__)


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico on every page, the sandbox's included."""
    return current_app.send_static_file("favicon.svg")



@bp.get("/")
def home():
    """Set-up steps without credentials.json; sign-in without a session; else the queue."""
    settings = ctx().settings
    if "user_id" not in session:
        try:
            ctx().oauth()
        except CredentialsFileError as exc:
            return render_template("ui/setup.html", problem=str(exc),
                                   credentials_path=settings.google_credentials,
                                   redirect_uri=redirect_uri())
        return render_template("ui/signin.html")
    return queue_page()



FILTERS = ("account_id", "campaign_id", "rule_id", "q")
# The tabs, in the order work flows; each tab's natural order by release time.
TABS = (("all", "All"), ("scheduled", "Scheduled"), ("held", "Held"), ("draft", "Drafts"),
        ("sending", "Sending"), ("retry_wait", "Retrying"), ("sent", "Sent"),
        ("failed", "Failed"), ("cancelled", "Cancelled"))
SOONEST_FIRST = {"scheduled", "held", "draft", "sending", "retry_wait"}
SORT_NAMES = (("release", "Release time, soonest first"),
              ("release_desc", "Release time, latest first"),
              ("created", "Created, newest first"))
PAGE = 50


def queue_params(**changes) -> dict:
    """The queue's query string as it stands, with `changes`; empty values left out (an
    empty filter is no filter, never the text 'None')."""
    params = {k: request.args.get(k) for k in (*FILTERS, "status", "sort")}
    params.update(changes)
    return {k: v for k, v in params.items() if v not in (None, "", "all")}


@login_required
def queue_page():
    """The team's queue: a tab per status with its count, filters, sorted by release time,
    a page at a time; the page's script refreshes it (the rows alone) as messages move."""
    status = request.args.get("status") or None
    if status == "all":
        status = None
    sort = request.args.get("sort") or ("release" if status in SOONEST_FIRST
                                        else "release_desc")
    filters = {k: request.args.get(k) or None for k in FILTERS}
    try:
        with ctx().db.read() as s:
            items, cursor = messages.list_messages(s, g.team_id, status=status,
                                                   cursor=request.args.get("cursor"),
                                                   limit=PAGE, filters=filters, sort=sort)
            counts = messages.status_counts(s, g.team_id, filters)
            from scheduler.store.models import Campaign, Rule
            campaigns = s.execute(select(Campaign.id, Campaign.name).where(
                Campaign.team_id == g.team_id).order_by(Campaign.id.desc())).all()
            rules = s.execute(select(Rule.id, Rule.name).where(
                Rule.team_id == g.team_id).order_by(Rule.id)).all()
            rows = [messages.message_as_dict(m) for m in items]
    except InvalidInput as exc:
        flash(f"{exc.message}: the queue is shown without it.", "error")
        return redirect(url_for("ui.queue.home"))
    page = {"rows": rows, "next_cursor": cursor, "status": status or "all", "sort": sort,
            "counts": counts, "filters": filters, "tabs": TABS, "params": queue_params,
            "first_page": not request.args.get("cursor")}
    live = _live_part("ui/queue_live.html", **page)
    if request.args.get("fragment") == "rows":
        return live
    return render_template("ui/queue.html", accounts=sender_accounts(g.team_id),
                           campaigns=campaigns, rules=rules, sorts=SORT_NAMES,
                           live=live, **page)


def _live_part(template: str, **values) -> Response:
    """The part of a page its script refreshes, with a version (a digest of what it shows)
    that the script compares to decide whether anything moved."""
    html = render_template(template, **values)
    response = Response(html, mimetype="text/html")
    response.headers["X-Live-Version"] = hashlib.sha256(html.encode()).hexdigest()[:16]
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/messages/bulk")
@login_required
def bulk():
    """Cancel or send now the chosen messages, each on its own (one that moved meanwhile
    is named, the others still go)."""
    c = ctx()
    action = request.form.get("action")
    ids = list(dict.fromkeys(request.form.getlist("message_id")))[:PAGE * 4]
    nxt = same_origin_path(request.form.get("next", "")) or url_for("ui.queue.home")
    if action not in ("cancel", "send_now") or not ids:
        flash("Choose messages, then Cancel or Send now.", "error")
        audit.skip()
        return redirect(nxt)
    done, problems = 0, []
    for mid in ids:
        try:
            if action == "cancel":
                cancelling.cancel(c.db, c.gmail, actor(), mid, utcnow())
            else:
                _send_now(actor(), mid, utcnow())
            done += 1
        except DomainError as exc:
            problems.append(exc.message)
    verb = "Cancelled" if action == "cancel" else "Released now"
    flash(f"{verb} {done} message{'s' if done != 1 else ''}.", "ok" if done else "warning")
    if problems:
        flash(f"{len(problems)} could not be: " + "; ".join(problems[:5]) +
              ("…" if len(problems) > 5 else ""), "warning")
    c.wake_worker()
    return redirect(nxt)



@bp.get("/messages/<message_id>")
@login_required
def message_page(message_id):
    """A message and its timeline."""
    try:
        with ctx().db.read() as s:
            m = messages.get_message(s, g.team_id, message_id)
            row = messages.message_as_dict(m)
            row["html"], row["data"] = m.html_tpl, m.data
            row["subject_tpl"] = m.subject_tpl
            row["rendered"] = messages.rendered(m, ctx().links)
    except DomainError:
        return render_template("ui/error.html", code=404,
                               message="No such message in your team."), 404
    live = _live_part("ui/message_live.html", m=row)
    if request.args.get("fragment") == "live":  # the page's script, as the message moves
        return live
    return render_template("ui/message.html", m=row, live=live)



def _action(message_id: str, action, verb: str):
    """Run `action(actor, message_id, now)` (it opens its own transactions)."""
    c = ctx()
    try:
        action(actor(), message_id, utcnow())
    except DomainError as exc:
        not_found(exc)
        flash(exc.message, "error")
        audit.skip()
    else:
        flash(f"Message {verb}.", "ok")
        c.wake_worker()
    nxt = same_origin_path(request.form.get("next", "")) or url_for(
        "ui.queue.message_page", message_id=message_id)
    return redirect(nxt)



@bp.post("/messages/<message_id>/cancel")
@login_required
def cancel(message_id):
    """Cancel from the queue or the message page."""
    c = ctx()
    return _action(message_id, partial(cancelling.cancel, c.db, c.gmail),
                   "cancelled")



@bp.post("/messages/<message_id>/edit")
@login_required
def edit_message(message_id):
    """Reschedule and/or edit an open message (the API's PATCH, from its page)."""
    form = request.form
    try:
        body = {"to": form.get("to"), "subject": form.get("subject"),
                "html": form.get("html"), "data": json_field(form, "data", {})}
        body = {k: v for k, v in body.items() if v is not None}
        if form.get("when") == "at":
            body["send_at"] = local_send_at(form)
        c, now = ctx(), utcnow()
        with c.db.read() as s:  # checked and rendered before the write transaction
            change = messages.prepare_change(s, g.team_id, message_id,
                                             make(MessageChange, **body), now, g.user_id)
        with c.db.write() as s:
            m = messages.apply_change(s, actor(), change, now)
            status, release_at = m.status, m.release_at
    except DomainError as exc:
        audit.skip()
        if exc.status == 404:
            abort(404, "No such message in your team.")
        flash(f"Not changed: {exc.message}", "error")
        return redirect(url_for("ui.queue.message_page", message_id=message_id))
    if status == "scheduled":
        c.wake_worker(release_at)
    flash("Message changed." if status == "scheduled" else
          "Message changed but held: see why below.", "ok" if status == "scheduled" else
          "warning")
    return redirect(url_for("ui.queue.message_page", message_id=message_id))



@bp.post("/messages/<message_id>/send-now")
@login_required
def send_now(message_id):
    """Send an open message now."""
    return _action(message_id, _send_now, "released now")


def _send_now(who, mid, now) -> None:
    with ctx().db.read() as s:  # a held message is rendered again before the write
        messages.check_send_now(s, who.team_id, mid)
    with ctx().db.write() as s:
        messages.send_now(s, who, mid, now)
