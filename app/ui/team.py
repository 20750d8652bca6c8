"""The team page: members and roles, invitations, the audit log; switching teams."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from app import actor, audit, ctx
from app.audit import changes_nothing
from app.auth import login_required, viewer_ok
from app.invitations import invitation_message, mail_invitation
from scheduler.addresses import AddressError, normalize_email
from scheduler.audience import teams
from scheduler.errors import DomainError
from scheduler.store.audit import audit_log
from scheduler.store.db import utcnow
from scheduler.store.models import ROLES, Team

bp = Blueprint("team", __name__)


@bp.get("/team")
@login_required
def team_page():
    """Members, open invitations and the latest changes (with older ones by cursor)."""
    before = request.args.get("before", type=int)
    with ctx().db.read() as s:
        team = s.get(Team, g.team_id)
        log, older = audit_log(s, g.team_id, before=before, limit=50)
        return render_template("ui/team.html", team=team, members=teams.members(s, g.team_id),
                               invitations=teams.invitations(s, g.team_id), log=log,
                               older=older, manage=g.role in teams.CAN_MANAGE, roles=teams.ROLES)


def _owner_change(change, done: str):
    """Run an owners-only change of the team; a refused one says why and changes nothing."""
    c = ctx()
    try:
        teams.require(g.role, teams.CAN_MANAGE, "manage the team's members")
        with c.db.write() as s:
            extra = change(s)
    except DomainError as exc:
        audit.skip()
        if exc.status in (403, 404):
            abort(exc.status, exc.message)
        flash(exc.message, "error")
        return redirect(url_for("ui.team.team_page"))
    flash(done + (f" {extra}" if extra else ""), "ok")
    if extra and "queued" in extra:
        c.wake_worker()
    return redirect(url_for("ui.team.team_page"))


@bp.post("/team/invitations")
@login_required
def invite():
    """Invite a Google address with a role, and mail the invitation from one's Gmail."""
    form = request.form
    prepared = None
    if form.get("send_email") == "on" and g.role in teams.CAN_MANAGE:
        try:
            email = normalize_email(form.get("email"))
        except AddressError:
            email = None  # teams.invite names the problem
        if email and form.get("role", "member") in ROLES:
            with ctx().db.read() as s:  # rendered before the write transaction
                prepared = invitation_message(s, g.team_id, g.user_id, email,
                                              form.get("role", "member"))

    def change(s):
        teams.invite(s, actor(), form.get("email"),
                     form.get("role", "member"), utcnow())
        if prepared is None:
            return None
        mailed = mail_invitation(s, prepared)
        return ("The invitation email is queued." if mailed["message_id"] else
                f"No invitation email: {mailed['mail_error']}")
    return _owner_change(change, f"Invited {form.get('email', '').strip()}.")


@bp.post("/team/invitations/<int:invitation_id>/revoke")
@login_required
def revoke_invitation(invitation_id):
    """Withdraw an open invitation."""
    return _owner_change(lambda s: teams.revoke_invitation(s, actor(), invitation_id,
                                                           utcnow()) and None,
                         "Invitation withdrawn.")


@bp.post("/team/members/<int:user_id>/role")
@login_required
def change_member(user_id):
    """Change a member's role (a team always keeps an owner)."""
    return _owner_change(lambda s: teams.set_role(s, actor(), user_id,
                                                  request.form.get("role"), utcnow()) and None,
                         "Role changed.")


@bp.post("/team/members/<int:user_id>/remove")
@login_required
def remove_member(user_id):
    """Remove a member from the team; their API tokens for it stop working."""
    return _owner_change(lambda s: teams.remove_member(s, actor(), user_id, utcnow()),
                         "Member removed.")


@bp.post("/team/switch")
@login_required
@viewer_ok
@changes_nothing
def switch_team():
    """Look at (and work in) another team one belongs to."""
    wanted = request.form.get("team_id", type=int)
    with ctx().db.read() as s:
        role = teams.role_of(s, g.user_id, wanted) if wanted else None
        name = s.get(Team, wanted).name if role else None
    if role is None:
        abort(404, "You are not a member of that team.")
    session["team_id"] = wanted
    flash(f"Now working in {name} (as {role}).", "ok")
    return redirect(url_for("ui.queue.home"))
