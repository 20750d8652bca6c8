"""Server-rendered pages: set-up, sign-in, the queue, compose, a message's timeline."""
from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (Blueprint, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from sqlalchemy import select

from app import ctx
from app.auth import login_required, redirect_uri
from gmail_client.oauth import CredentialsFileError, load_client_config
from scheduler import messages
from scheduler.db import utcnow
from scheduler.errors import DomainError, InvalidInput
from scheduler.models import MESSAGE_STATUSES, GmailAccount

bp = Blueprint("ui", __name__)


def _accounts(team_id: int) -> list[GmailAccount]:
    with ctx().db.read() as s:
        return list(s.scalars(select(GmailAccount).where(GmailAccount.team_id == team_id)
                              .order_by(GmailAccount.id)))


@bp.app_context_processor
def _globals():
    settings = ctx().settings
    return {"signed_in_as": session.get("email"), "sandbox": settings.sandbox,
            "statuses": MESSAGE_STATUSES}


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
            load_client_config(settings.google_credentials)
        except CredentialsFileError as exc:
            return render_template("ui/setup.html", problem=str(exc),
                                   credentials_path=settings.google_credentials,
                                   redirect_uri=redirect_uri())
        return render_template("ui/signin.html")
    return queue_page()


@login_required
def queue_page():
    """The team's queue, newest first, filterable by status."""
    status = request.args.get("status") or None
    try:
        with ctx().db.read() as s:
            filters = {k: request.args.get(k) for k in
                       ("account_id", "campaign_id", "rule_id", "q")}
            items, cursor = messages.list_messages(s, g.team_id, status=status,
                                                   cursor=request.args.get("cursor"),
                                                   limit=50, filters=filters)
            from scheduler.models import Campaign, Rule
            campaigns = s.execute(select(Campaign.id, Campaign.name).where(
                Campaign.team_id == g.team_id).order_by(Campaign.id.desc())).all()
            rules = s.execute(select(Rule.id, Rule.name).where(
                Rule.team_id == g.team_id).order_by(Rule.id)).all()
            rows = [messages.message_as_dict(m) for m in items]
    except InvalidInput as exc:
        flash(exc.message, "error")
        return redirect(url_for("ui.home"))
    return render_template("ui/queue.html", rows=rows, next_cursor=cursor, status=status,
                           accounts=_accounts(g.team_id), filters=filters,
                           campaigns=campaigns, rules=rules)


def _local_send_at(form) -> str | None:
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


@bp.route("/compose", methods=["GET", "POST"])
@login_required
def compose():
    """Write a message with placeholders and data, pick a time, queue it."""
    accounts = _accounts(g.team_id)
    form = request.form if request.method == "POST" else {}
    if request.method == "POST":
        c = ctx()
        try:
            data_text = form.get("data", "").strip() or "{}"
            try:
                data = json.loads(data_text)
            except ValueError as exc:
                raise InvalidInput(f"data is not valid JSON: {exc}", field="data") from None
            body = {"to": form.get("to"), "subject": form.get("subject"),
                    "html": form.get("html"), "data": data,
                    "from": form.get("from") or None,
                    "send_at": _local_send_at(form)}
            with c.db.write() as s:
                message = messages.create_message(s, team_id=g.team_id, user_id=g.user_id,
                                                  body=body, now=utcnow())
                mid, status, release_at = message.id, message.status, message.release_at
        except DomainError as exc:
            flash(exc.message, "error")
            return render_template("ui/compose.html", form=form, accounts=accounts,
                                   error_field=exc.field), exc.status
        if status == "scheduled":
            c.wake_worker(release_at)
            flash("Message scheduled.", "ok")
        else:
            flash("Message saved but held: see why below.", "warning")
        return redirect(url_for("ui.message_page", message_id=mid))
    return render_template("ui/compose.html", form=form, accounts=accounts, error_field=None)


@bp.get("/messages/<message_id>")
@login_required
def message_page(message_id):
    """A message and its timeline."""
    try:
        with ctx().db.read() as s:
            m = messages.get_message(s, g.team_id, message_id)
            row = messages.message_as_dict(m)
            row["html"], row["data"] = m.html_tpl, m.data
    except DomainError:
        return render_template("ui/error.html", code=404,
                               message="No such message in your team."), 404
    return render_template("ui/message.html", m=row)


def _action(message_id: str, action, verb: str):
    c = ctx()
    try:
        with c.db.write() as s:
            action(s, g.team_id, message_id, utcnow(), f"ui:{g.user_id}")
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Message {verb}.", "ok")
        c.wake_worker()
    nxt = request.form.get("next", "")
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = url_for("ui.message_page", message_id=message_id)  # no open redirect
    return redirect(nxt)


@bp.post("/messages/<message_id>/cancel")
@login_required
def cancel(message_id):
    """Cancel from the queue or the message page."""
    return _action(message_id, messages.cancel_message, "cancelled")


@bp.post("/messages/<message_id>/send-now")
@login_required
def send_now(message_id):
    """Send an open message now."""
    return _action(message_id, messages.send_now, "released now")
