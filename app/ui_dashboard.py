"""The dashboard: sent, opened, clicked, replied, bounced over time, per campaign and A/B
variant, as charts (Chart.js, served from our own static folder) over plain tables."""
from __future__ import annotations

from flask import g, jsonify, render_template, request

from app import ctx
from app.api import bp as api_bp, require_token
from app.auth import login_required
from app.ui import bp
from scheduler import dashboard, lookup, sanity
from scheduler.db import utcnow
from scheduler.errors import DomainError


def _stats() -> dict:
    days = sanity.number(request.args.get("days", 30), "days", whole=True, minimum=1,
                         maximum=366)
    campaign_id = lookup.query_id(request.args.get("campaign_id"), "campaign_id")
    with ctx().db.read() as s:
        out = dashboard.over_time(s, g.team_id, days=days, zone=request.args.get("tz"),
                                  now=utcnow(), campaign_id=campaign_id)
        out["campaigns"] = dashboard.by_campaign(s, g.team_id)
    return out


@api_bp.get("/stats")
@require_token
def stats():
    """Outcomes per day (`?days=30&tz=Europe/Paris&campaign_id=`), per campaign and variant."""
    return jsonify(_stats())


@bp.get("/dashboard")
@login_required
def dashboard_page():
    """Charts of the team's delivery outcomes, with the numbers as tables beneath."""
    try:
        data = _stats()
    except DomainError as exc:
        return render_template("ui/error.html", code=exc.status, message=exc.message), \
            exc.status
    return render_template("ui/dashboard.html", data=data, series=dashboard.SERIES,
                           days=len(data["days"]))
