"""The rules page: what each rule does and how it performs; ready-made sets; a new rule."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from app import actor, audit, ctx
from app.auth import login_required
from app.ui import json_field
from scheduler import sanity
from scheduler.automation import events
from scheduler.commands import NewRule
from scheduler.content import starters, templates
from scheduler.errors import DomainError, InvalidInput
from scheduler.store.db import utcnow
from scheduler.store.models import Rule
from scheduler.typed import make

bp = Blueprint("rules", __name__)


def _rule(form) -> NewRule:
    """The rule the form describes (the API's command)."""
    template = form.get("template_id", "").strip()
    if not template:
        raise InvalidInput("choose a template", field="template_id")
    body = {"name": form.get("name", "").strip() or None, "event": form.get("event", ""),
            "template_id": sanity.number(template, "template_id", whole=True, minimum=1,
                                         maximum=2 ** 31 - 1),
            "conditions": json_field(form, "conditions", []),
            "cancel_on": [n.strip() for n in form.get("cancel_on", "").split(",") if n.strip()]}
    delay = form.get("delay_minutes", "").strip()
    if delay:
        body["delay_seconds"] = sanity.number(delay, "delay_seconds",
                                              maximum=366 * 24 * 60) * 60
    cap = form.get("cap_max", "").strip()
    if cap:
        body["frequency_cap"] = {
            "max": sanity.number(cap, "frequency_cap", whole=True, minimum=1, maximum=10_000),
            "seconds": int(sanity.number(form.get("cap_days") or 1, "frequency_cap",
                                         minimum=1 / 86400, maximum=366) * 86400)}
    if form.get("best_hour") == "on":
        body["best_hour"] = True
    return make(NewRule, **body)


@bp.route("/rules", methods=["GET", "POST"])
@login_required
def rules_page():
    """Rules with their counts and rates; POST adds a rule or a ready-made set."""
    c = ctx()
    form = request.form if request.method == "POST" else {}
    error_field, status = None, 200
    if request.method == "POST":
        try:
            with c.db.write() as s:
                if form.get("seed"):
                    made = events.seed_rules(s, g.team_id, g.user_id, form["seed"],
                                             c.settings.content_hosts, utcnow(), actor())
                    done = (f"Added {len(made)} rule{'s' if len(made) != 1 else ''}." if made
                            else "This set's rules are all there already: nothing added.")
                    if not made:
                        audit.skip()
                else:
                    rule = events.create_rule(s, g.team_id, _rule(form), utcnow(), actor())
                    done = f"Rule “{rule.name}” added."
        except DomainError as exc:
            audit.skip()
            flash(exc.message, "error")
            error_field, status = exc.field, exc.status
        else:
            flash(done, "ok")
            return redirect(url_for("ui.rules.rules_page"))
    with c.db.read() as s:
        rows = s.scalars(select(Rule).where(Rule.team_id == g.team_id).order_by(Rule.id)).all()
        stats = events.rule_stats(s, [r.id for r in rows])
        rules = [{**events.rule_as_dict(r, stats[r.id]), "paused_reason": r.paused_reason}
                 for r in rows]
        names = {t.id: t.name for t in templates.list_templates(s, g.team_id)}
    return render_template("ui/rules.html", rules=rules, names=names, form=form,
                           seeds=starters.rule_seeds(), error_field=error_field), status


@bp.post("/rules/<int:rule_id>/delete")
@login_required
def delete_rule(rule_id):
    """Delete a rule; what it queued stays queued."""
    try:
        with ctx().db.write() as s:
            events.delete_rule(s, actor(), rule_id, utcnow())
    except DomainError:
        audit.skip()
        abort(404, "No such rule in your team.")
    flash("Rule deleted; what it queued stays queued.", "ok")
    return redirect(url_for("ui.rules.rules_page"))
