"""The dashboard: sent, opened, clicked, replied, bounced over time, per campaign and A/B
variant, as charts (Chart.js, served from our own static folder) over plain tables."""
from __future__ import annotations

from typing import Annotated

from flask import Blueprint, g, jsonify, render_template
from pydantic import Field

from app import ctx
from app.api import bp as api_bp
from app.api import responses
from app.api.endpoint import Query, read_query, route
from app.auth import login_required
from app.ui import guard
from scheduler.delivery import statistics as dashboard
from scheduler.errors import DomainError
from scheduler.store.db import utcnow
from scheduler.typed import Id

bp = Blueprint("dashboard", __name__)


class StatsQuery(Query):
    """How many days back, in which zone, for which campaign."""

    days: Annotated[int, Field(ge=1, le=dashboard.MAX_DAYS)] = 30
    tz: Annotated[str, Field(max_length=64)] | None = None
    campaign_id: Id | None = None


def _stats(query: StatsQuery) -> dict:
    with ctx().db.read() as s:
        out = dashboard.over_time(s, g.team_id, days=query.days, zone=query.tz,
                                  now=utcnow(), campaign_id=query.campaign_id)
        out["campaigns"] = dashboard.by_campaign(s, g.team_id)
    return out


@route(api_bp, "GET", "/stats", query=StatsQuery, answers={200: responses.Stats})
def stats(query: StatsQuery):
    """Outcomes per day (`?days=30&tz=Europe/Paris&campaign_id=`), per campaign and variant."""
    return jsonify(_stats(query))


@bp.get("/dashboard")
@login_required
def dashboard_page():
    """Charts of the team's delivery outcomes, with the numbers as tables beneath."""
    try:
        data = _stats(read_query(StatsQuery))
    except DomainError as exc:
        return render_template("ui/error.html", code=exc.status, message=exc.message), \
            exc.status
    return render_template("ui/dashboard.html", data=data, series=dashboard.SERIES,
                           days=len(data["days"]), standing=guard.standing())
