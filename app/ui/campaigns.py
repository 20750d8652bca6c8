"""Pages for campaigns: the list with counts and A/B decisions, and a form that shows the
queueing progress."""
from __future__ import annotations

import json

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import select

from app import actor, audit, ctx, idempotent
from app.auth import login_required
from app.progress import with_progress
from app.ui.compose import senders
from scheduler import sanity
from scheduler.audience import segments
from scheduler.automation import campaigns
from scheduler.commands import NewCampaign
from scheduler.content import templates
from scheduler.delivery.statistics import variant_stats
from scheduler.errors import DomainError, InvalidInput
from scheduler.store import idempotency
from scheduler.store.db import utcnow
from scheduler.store.models import Campaign
from scheduler.typed import make

bp = Blueprint("campaigns", __name__)


def _command(form) -> NewCampaign:
    """The campaign the form describes (the API's command)."""
    if not form.get("template_id", "").strip():
        raise InvalidInput("choose a template", field="template_id")
    template_id = sanity.number(form["template_id"], "template_id", whole=True, minimum=1,
                                maximum=2 ** 31 - 1)
    body: dict = {"name": form.get("name") or None, "template_id": template_id}
    if form.get("from"):
        body["from"] = form["from"]
    if form.get("segment_id"):
        body["audience"] = {"segment_id": sanity.number(
            form["segment_id"], "segment_id", whole=True, minimum=1, maximum=2 ** 31 - 1)}
    if form.get("local_time"):
        body["local_time"] = {"time": form["local_time"],
                              "fallback_timezone": form.get("timezone") or "UTC"}
    if form.get("ab") == "on":
        fraction = sanity.number(form.get("test_percent", "20"), "test_percent",
                                 minimum=0.01, maximum=100) / 100
        hours = sanity.number(form.get("decide_hours", "4"), "decide_hours",
                              maximum=366 * 24)
        body["variants"] = [{"key": "A"}, {"key": "B", "subject": form.get("subject_b", "")}]
        body["ab"] = {"test_fraction": fraction, "metric": form.get("metric", "open"),
                      "decide_after_seconds": hours * 3600}
    return make(NewCampaign, **body)


@bp.route("/campaigns", methods=["GET", "POST"])
@login_required
def campaigns_page():
    """Campaigns with their counts and decisions; a new one queues with a progress bar."""
    c = ctx()
    if request.method == "POST":
        team_id, user_id, now, who = g.team_id, g.user_id, utcnow(), actor()
        key = idempotent.form_key(request.form)
        try:
            body = _command(request.form)
        except DomainError as exc:
            flash(exc.message, "error")
            return redirect(url_for("ui.campaigns.campaigns_page"))

        def work(progress) -> dict:
            try:
                with c.db.read() as s:  # rendered before the write transaction
                    prepared = campaigns.prepare_campaign(s, team_id, user_id, body, now,
                                                          progress)
                with c.db.write() as s:
                    held = idempotent.claim_form(s, team_id, key)
                    made = campaigns.store_campaign(s, prepared, who)
                    s.flush()
                    out = {"id": made.id, "counts": made.counts,
                           "warnings": campaigns.sending_warnings(s, made,
                                                                  c.settings.daily_cap, now)}
                    idempotency.remember(s, held, 200, out)
                    return out
            except idempotency.Replay as replay:  # a double submit: the first one's answer
                return {**replay.body, "replayed": True}
        if "application/x-ndjson" in request.headers.get("Accept", ""):
            def lines():
                try:
                    for item in with_progress(work, "queued"):
                        yield json.dumps(item) + "\n"
                    c.wake_worker()
                except DomainError as exc:
                    yield json.dumps({"error": {"message": exc.message,
                                                "field": exc.field}}) + "\n"
            return Response(stream_with_context(lines()), mimetype="application/x-ndjson")
        try:
            out = work(lambda _n: None)
        except DomainError as exc:
            flash(exc.message, "error")
            return redirect(url_for("ui.campaigns.campaigns_page"))
        if out.get("replayed"):
            audit.skip()  # a double submit: the first one queued it
        c.wake_worker()
        flash(f"Campaign queued: {out['counts']['queued']} messages, "
              f"{out['counts']['skipped_unsubscribed']} unsubscribed skipped.", "ok")
        for warning in out.get("warnings") or ():
            flash(warning, "warning")
        return redirect(url_for("ui.campaigns.campaigns_page"))
    with c.db.read() as s:
        rows = [{**campaigns.campaign_as_dict(x, variant_stats(s, x)),
                 "paused_reason": x.paused_reason} for x in
                s.scalars(select(Campaign).where(Campaign.team_id == g.team_id)
                          .order_by(Campaign.id.desc()).limit(50))]
        choices = [(t.id, t.name) for t in templates.list_templates(s, g.team_id)]
        saved = segments.list_segments(s, g.team_id)
    return render_template("ui/campaigns.html", rows=rows, choices=choices, segments=saved,
                           senders=senders(), chosen=request.args.get("segment_id", ""))
