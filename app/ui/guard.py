"""The sender guard in pages: the standing of each account and sending domain (on the
dashboard), and resuming what the guard paused (an account's warm-up is switched on the
Accounts page, in settings)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, request, url_for

from app import actor, audit, ctx
from app.auth import login_required
from scheduler.audience import guard, teams
from scheduler.errors import DomainError
from scheduler.store.db import utcnow

bp = Blueprint("guard", __name__)
_BACK = {"campaign": "ui.campaigns.campaigns_page", "rule": "ui.rules.rules_page",
         "account": "ui.settings.accounts_page"}


def standing() -> dict:
    """The team's sending report, for the dashboard."""
    c = ctx()
    with c.db.read() as s:
        mine = list(s.scalars(teams.usable_accounts(g.team_id, g.user_id)))
        return guard.sending_report(s, mine, c.settings.daily_cap, utcnow())


@bp.post("/guard/<kind>/<int:row_id>/resume")
@login_required
def resume(kind, row_id):
    """Resume a campaign, rule or account the sender guard paused."""
    if kind not in _BACK:
        abort(404)
    c, who = ctx(), actor()
    try:
        teams.require(g.role, teams.CAN_CHANGE, "resume what the sender guard paused")
        with c.db.write() as s:
            released = guard.resume(s, who, kind, guard.pausable(s, who, kind, row_id),
                                    utcnow())
    except DomainError as exc:
        audit.skip()
        abort(exc.status, exc.message)
    c.wake_worker()
    flash(f"Resumed: {released} held message{'s' if released != 1 else ''} will go now.",
          "ok")
    back = "ui.dashboard.dashboard_page" if request.form.get("back") == "dashboard" \
        else _BACK[kind]
    return redirect(url_for(back))
