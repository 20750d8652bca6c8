"""Compose: one or several recipients or a contact list, a template or free text, a live
preview for the first recipient, timing (now, at, in, the recipient's local time, their
best hour, recurring), and the sending account or one of its Gmail aliases."""
from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup

from app import actor, audit, ctx, idempotent
from app.audit import changes_nothing
from app.auth import login_required, viewer_ok
from app.ui import json_field, local_send_at, preview_problem, timeline
from scheduler import sanity
from scheduler.audience import accounts, contacts, segments
from scheduler.automation import campaigns, schedules
from scheduler.commands import Content, NewCampaign, NewMessage, NewSchedule, Origin
from scheduler.content import templates
from scheduler.engine import messages
from scheduler.errors import DomainError, InvalidInput
from scheduler.store import idempotency
from scheduler.store.db import utcnow
from scheduler.timing import best_hour
from scheduler.typed import make

bp = Blueprint("compose", __name__)

MAX_RECIPIENTS = 500
# An "At" time this far in the past is a mistake to point out, not an order to send now.
PAST_GRACE = dt.timedelta(minutes=1)


def senders() -> list[dict]:
    """Every address one may send from here: accounts, then their aliases."""
    c = ctx()
    with c.db.read() as s:
        rows = accounts.account_states(s, g.team_id, g.user_id, c.settings.daily_cap,
                                       utcnow())
    out = []
    for a in rows:
        out.append({"email": a["email"], "label": a["email"] + (
            "" if a["state"] == "healthy" else f" ({a['state']})")})
        out += [{"email": x["email"], "label": f"{x['email']} (alias of {a['email']})"}
                for x in a["send_as"]]
    return out


def recipients(raw: str) -> list[str]:
    """Addresses separated by new lines, commas or semicolons (a quoted name may hold a
    comma: "Lovelace, Ada" <ada@example.com>)."""
    parts = re.findall(r'(?:"[^"]*"|[^,;\n])+', raw or "")
    return [p.strip() for p in parts if p.strip()]


def _timing(form) -> dict:
    when = form.get("when", "now")
    if when == "at":
        at = local_send_at(form)
        if at and dt.datetime.fromisoformat(at) < utcnow() - PAST_GRACE:
            raise InvalidInput("that time has passed: choose a later one, or Now to send at "
                               "once", field="send_at")
        return {"send_at": at}
    if when == "in":
        minutes = sanity.number(form.get("in_minutes", ""), "delay_seconds",
                                maximum=366 * 24 * 60)
        return {"delay_seconds": minutes * 60}
    if when == "local":
        if not form.get("local_time"):
            raise InvalidInput("choose the recipient's local time", field="local_time")
        return {"local_time": {"time": form["local_time"],
                               "fallback_timezone": form.get("timezone") or "UTC"}}
    if when == "best_hour":
        return {"best_hour": True}
    return {}


COPIES = ("reply_to", "cc", "bcc")


def _content(form) -> dict:
    body = {"data": json_field(form, "data", {}), "from": form.get("from") or None}
    # Left empty, the template's Reply-To, Cc and Bcc apply.
    if form.get("reply_to", "").strip():
        body["reply_to"] = form["reply_to"].strip()
    for name in ("cc", "bcc"):
        if form.get(name, "").strip():
            body[name] = recipients(form[name])
    if form.get("template_id"):
        body["template_id"] = sanity.number(form["template_id"], "template_id", whole=True,
                                            minimum=1, maximum=2 ** 31 - 1)
    else:
        body.update(subject=form.get("subject") or "", html=form.get("html") or "")
    return body


def _queue_each(body: dict, addresses: list[str]) -> list:
    """One message per address, all or none (a bad address is named with its position)."""
    if not addresses:
        raise InvalidInput("write at least one recipient", field="to")
    if len(addresses) > MAX_RECIPIENTS:
        raise InvalidInput(f"at most {MAX_RECIPIENTS} recipients here; for more, send to a "
                           "contact list", field="to")
    prepared = []
    with ctx().db.read() as s:  # checked and rendered before the write transaction
        for i, address in enumerate(addresses, 1):
            try:
                prepared.append(messages.prepare_message(
                    s, team_id=g.team_id, user_id=g.user_id, now=utcnow(),
                    command=make(NewMessage, **body, to=address),
                    origin=Origin(kind="form")))
            except DomainError as exc:
                if exc.field == "to" and len(addresses) > 1:
                    raise InvalidInput(f"recipient {i} ({address}): {exc.message}",
                                       field="to") from None
                raise
    made = []
    with ctx().db.write() as s:
        held = idempotent.claim_form(s, g.team_id, idempotent.form_key(request.form))
        for one in prepared:
            m = messages.store_message(s, one, actor())
            made.append((m.id, m.status, m.release_at))
        idempotency.remember(s, held, 200, {"made": [[mid, status, at.isoformat()]
                                                     for mid, status, at in made]})
    return made


@bp.route("/compose", methods=["GET", "POST"])
@login_required
def compose():
    """Write a message, pick recipients and a time, queue it."""
    c = ctx()
    form = request.form if request.method == "POST" else dict(request.args)
    if request.method == "POST":
        try:
            body = _content(form)
            if form.get("audience") == "contacts":
                return _to_contact_list(form, body)
            if form.get("when") == "recurring":
                return _recurring(form, body)
            made = _queue_each({**body, **_timing(form)}, recipients(form.get("to", "")))
        except DomainError as exc:
            audit.skip()
            flash(exc.message, "error")
            return render_template("ui/compose.html", form=form, senders=senders(),
                                   choices=_choices(), segments=_segments(),
                                   error_field=exc.field), exc.status
        except idempotency.Replay:
            audit.skip()
            flash("This form was already sent: nothing was queued twice.", "ok")
            return redirect(url_for("ui.queue.home"))
        for _mid, status, release_at in made:
            if status == "scheduled":
                c.wake_worker(release_at)
        held = sum(1 for m in made if m[1] == "held")
        if len(made) == 1:
            flash("Message scheduled." if not held else
                  "Message saved but held: see why below.", "ok" if not held else "warning")
            return redirect(url_for("ui.queue.message_page", message_id=made[0][0]))
        flash(f"{len(made)} messages scheduled" + (f", {held} held (see why on each)"
                                                   if held else "") + ".", "ok")
        return redirect(url_for("ui.queue.home"))
    return render_template("ui/compose.html", form=form, senders=senders(),
                           choices=_choices(), segments=_segments(), error_field=None)


def _segments():
    with ctx().db.read() as s:
        return segments.list_segments(s, g.team_id)


def _choices() -> list[tuple[int, str]]:
    with ctx().db.read() as s:
        return [(t.id, t.name) for t in templates.list_templates(s, g.team_id, "email")]


def _to_contact_list(form, body: dict):
    """A contact list is a campaign: every matching subscribed contact gets the template."""
    if not body.get("template_id"):
        raise InvalidInput("sending to a contact list needs a template", field="template_id")
    campaign = {"template_id": body["template_id"], "data": body["data"],
                "from": body["from"], "name": form.get("list_name") or None,
                **{k: body[k] for k in COPIES if k in body}}
    if form.get("segment_id"):
        campaign["audience"] = {"segment_id": sanity.number(
            form["segment_id"], "segment_id", whole=True, minimum=1, maximum=2 ** 31 - 1)}
    timing = _timing(form)
    if timing.get("best_hour"):
        raise InvalidInput("best hour is per message; for a list choose a time or the "
                           "recipients' local time", field="when")
    campaign.update(timing)
    with ctx().db.read() as s:  # rendered before the write transaction
        prepared = campaigns.prepare_campaign(s, g.team_id, g.user_id,
                                              make(NewCampaign, **campaign), utcnow())
    with ctx().db.write() as s:
        held = idempotent.claim_form(s, g.team_id, idempotent.form_key(request.form))
        made = campaigns.store_campaign(s, prepared, actor())
        counts = made.counts
        idempotency.remember(s, held, 200, {"counts": counts})
    ctx().wake_worker()
    flash(f"Queued {counts['queued']} messages to your contacts; "
          f"{counts['skipped_unsubscribed']} unsubscribed skipped.", "ok")
    return redirect(url_for("ui.campaigns.campaigns_page"))


def _recurring(form, body: dict):
    """A recurring send: one message per occurrence of a cron expression in a zone."""
    if not body.get("template_id"):
        raise InvalidInput("a recurring send needs a template", field="template_id")
    given = next((k for k in COPIES if k in body), None)
    if given:
        raise InvalidInput("a recurring send takes its Cc, Bcc and Reply-To from its "
                           "template: set them there", field=given)
    addresses = recipients(form.get("to", ""))
    if len(addresses) != 1:
        raise InvalidInput("a recurring send goes to one recipient", field="to")
    with ctx().db.write() as s:
        schedule = schedules.create_schedule(s, g.team_id, g.user_id, make(
            NewSchedule, cron=form.get("cron", ""), timezone=form.get("timezone") or "UTC",
            catch_up=form.get("catch_up") or "latest",
            template_id=body["template_id"], to=addresses[0], data=body["data"]),
            utcnow(), actor())
        first = schedule.next_at
    flash(Markup("Recurring send saved; the first goes out {}.").format(timeline.when(first))
          if first else "Recurring send saved.", "ok")
    return redirect(url_for("ui.schedules.schedules_page"))


@bp.post("/compose/preview")
@login_required
@viewer_ok
@changes_nothing
def compose_preview():
    """JSON: the message as its first recipient will see it, and when it would go."""
    form = request.form
    try:
        body = _content(form)
        first = (recipients(form.get("to", "")) or [None])[0]
        with ctx().db.read() as s:
            if body.get("template_id"):
                t = templates.get_template(s, g.team_id, body["template_id"])
                parts = {"subject": t.subject, "html": t.html, "text": t.text, "amp": t.amp,
                         "sources": t.sources}
            else:
                content = make(Content, subject=body["subject"], html=body["html"])
                for name in ("subject", "html"):
                    if not (getattr(content, name) or "").strip():
                        raise InvalidInput(f"{name} is required", field=name)
                parts = {"subject": content.subject, "html": content.html}
                templates.check_parts(parts["subject"], parts["html"], None, None)
            data, best = dict(body["data"]), None
            if first:
                to = messages.parse_address(first, "to")
                contact, recipient = contacts.recipient(s, g.team_id, to)
                data = {**recipient, **data}
                if form.get("when") == "best_hour":
                    best = best_hour.best_hour_for(s, g.team_id, contact, utcnow())
        out = templates.preview(parts, data, ctx().content, ctx().links)
    except DomainError as exc:
        return preview_problem(exc)
    return jsonify({"subject": out["subject"], "html": out["html"], "text": out["text"],
                    "to": first, "best_hour": best})
