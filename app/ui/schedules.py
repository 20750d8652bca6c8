"""Recurring sends as a page: each with its next occurrences, and pause, resume, edit, stop."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from app import actor, audit, ctx
from app.auth import login_required
from app.ui import json_field, refused
from scheduler.automation import schedules
from scheduler.commands import ScheduleChange
from scheduler.content import templates
from scheduler.errors import DomainError
from scheduler.store.db import utcnow
from scheduler.store.models import Schedule
from scheduler.typed import make

bp = Blueprint("schedules", __name__)

CATCH_UP = (("latest", "send the most recent one only"), ("all", "send each of them"),
            ("hold", "hold them for me to decide"))


@bp.get("/schedules")
@login_required
def schedules_page():
    """Every recurring send of the team: active and paused first, then stopped."""
    with ctx().db.read() as s:
        found = s.scalars(select(Schedule).where(Schedule.team_id == g.team_id)
                          .order_by(Schedule.stopped_at.is_not(None), Schedule.id)).all()
        names = {t.id: t.name for t in templates.list_templates(s, g.team_id, "email")}
        rows = [{**schedules.schedule_as_dict(x), "upcoming": schedules.upcoming(x),
                 "template": names.get(x.template_id, "(deleted template)")} for x in found]
    return render_template("ui/schedules.html", rows=rows, catch_up=CATCH_UP)


def _act(schedule_id, action, done: str):
    try:
        with ctx().db.write() as s:
            before = schedules.schedule_state(schedules.get_schedule(s, g.team_id,
                                                                     schedule_id))
            after = schedules.schedule_state(action(s, actor(), schedule_id, utcnow()))
    except DomainError as exc:
        refused(exc)
    else:
        if after == before:  # a second click, or another tab did it first
            audit.skip()
            flash(f"It was {after} already.", "ok")
        else:
            flash(done, "ok")
            ctx().wake_worker()
    return redirect(url_for("ui.schedules.schedules_page"))


@bp.post("/schedules/<int:schedule_id>/pause")
@login_required
def pause(schedule_id):
    """Pause: no occurrence is queued until it is resumed."""
    return _act(schedule_id, schedules.pause_schedule, "Recurring send paused.")


@bp.post("/schedules/<int:schedule_id>/resume")
@login_required
def resume(schedule_id):
    """Resume from the next occurrence after now."""
    return _act(schedule_id, schedules.resume_schedule,
                "Recurring send resumed; occurrences that fell while it was paused are "
                "not sent.")


@bp.post("/schedules/<int:schedule_id>/stop")
@login_required
def stop(schedule_id):
    """Stop for good."""
    return _act(schedule_id, schedules.stop_schedule,
                "Recurring send stopped; messages already queued can still be cancelled "
                "in the queue.")


@bp.post("/schedules/<int:schedule_id>")
@login_required
def edit(schedule_id):
    """Save a recurring send's name, cron, zone, recipient, data and catch-up."""
    form = request.form
    try:
        change = make(ScheduleChange, name=form.get("name") or None,
                      cron=form.get("cron") or None, timezone=form.get("timezone") or None,
                      to=form.get("to") or None, data=json_field(form, "data", None),
                      catch_up=form.get("catch_up") or None)
        with ctx().db.write() as s:
            schedules.change_schedule(s, actor(), schedule_id, change, utcnow())
    except DomainError as exc:
        refused(exc, "Not saved: ")
    else:
        flash("Recurring send saved.", "ok")
        ctx().wake_worker()
    return redirect(url_for("ui.schedules.schedules_page"))
