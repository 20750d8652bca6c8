"""The team in the API: settings, members and roles, invitations, accounts and sharing,
the audit log."""
from __future__ import annotations

from flask import g, jsonify, request

from app import ctx
from app.api import bp, json_body, page_limit, require_token
from app.invitations import mail_invitation
from scheduler import lookup, teams
from scheduler.db import utcnow
from scheduler.errors import InvalidInput
from scheduler.accounts import account_states
from scheduler.models import Team


def _team_dict(team: Team) -> dict:
    return {"id": team.id, "name": team.name, "tracking": team.tracking, "role": g.role}


def _invitation_dict(invitation) -> dict:
    return {"id": invitation.id, "email": invitation.email, "role": invitation.role,
            "created_at": invitation.created_at.isoformat()}


@bp.get("/team")
@require_token
def get_team():
    """The caller's team, its settings and the caller's role."""
    with ctx().db.read() as s:
        return jsonify(_team_dict(s.get(Team, g.team_id)))


@bp.patch("/team")
@require_token
def update_team():
    """Owners change team settings: `name`, `tracking` (open pixels and click redirects)."""
    body = json_body()
    teams.require(g.role, teams.CAN_MANAGE, "change the team's settings")
    unknown = set(body) - {"tracking", "name"}
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]} cannot be changed", field=sorted(unknown)[0])
    with ctx().db.write() as s:
        team = s.get(Team, g.team_id)
        if "tracking" in body:
            if not isinstance(body["tracking"], bool):
                raise InvalidInput("tracking must be true or false", field="tracking")
            team.tracking = body["tracking"]
        if "name" in body:
            if not isinstance(body["name"], str) or not body["name"].strip():
                raise InvalidInput("name must be a non-empty string", field="name")
            team.name = body["name"].strip()[:200]
        return jsonify(_team_dict(team))


@bp.get("/team/members")
@require_token
def list_members():
    """Members with their roles."""
    with ctx().db.read() as s:
        return jsonify({"items": teams.members(s, g.team_id), "next_cursor": None})


@bp.patch("/team/members/<user_id>")
@require_token
def change_member(user_id):
    """Owners change a member's `role` (a team always keeps an owner: 409)."""
    body = json_body()
    teams.require(g.role, teams.CAN_MANAGE, "change roles")
    with ctx().db.write() as s:
        row = teams.set_role(s, g.team_id, user_id, body.get("role"))
        role = row.role
    return jsonify({"user_id": row.user_id, "role": role})


@bp.delete("/team/members/<user_id>")
@require_token
def remove_member(user_id):
    """Owners remove a member; their tokens for this team stop working."""
    teams.require(g.role, teams.CAN_MANAGE, "remove members")
    with ctx().db.write() as s:
        teams.remove_member(s, g.team_id, user_id, utcnow())
    return "", 204


@bp.get("/team/invitations")
@require_token
def list_invitations():
    """Open invitations."""
    with ctx().db.read() as s:
        return jsonify({"items": [_invitation_dict(i) for i in teams.invitations(s, g.team_id)],
                        "next_cursor": None})


@bp.post("/team/invitations")
@require_token
def create_invitation():
    """Owners invite a Google address with a role (201); `send_email` (default true) also
    mails the invitation from the owner's Gmail."""
    body = json_body()
    teams.require(g.role, teams.CAN_MANAGE, "invite people")
    send = body.get("send_email", True)
    if not isinstance(send, bool):
        raise InvalidInput("send_email must be true or false", field="send_email")
    c = ctx()
    with c.db.write() as s:
        invitation = teams.invite(s, g.team_id, g.user_id, body.get("email"),
                                  body.get("role", "member"), utcnow())
        out = _invitation_dict(invitation)
        out.update(mail_invitation(s, invitation, g.user_id) if send else
                   {"message_id": None})
    if out.get("message_id"):
        c.wake_worker()
    return jsonify(out), 201


@bp.delete("/team/invitations/<invitation_id>")
@require_token
def revoke_invitation(invitation_id):
    """Owners withdraw an open invitation."""
    teams.require(g.role, teams.CAN_MANAGE, "withdraw invitations")
    with ctx().db.write() as s:
        teams.revoke_invitation(s, g.team_id, invitation_id, utcnow())
    return "", 204


@bp.get("/accounts")
@require_token
def list_accounts():
    """The Gmail accounts the caller can send from in this team, with their state
    (healthy, needs reconnecting, daily limit reached with the count) and aliases."""
    c = ctx()
    with c.db.read() as s:
        items = account_states(s, g.team_id, g.user_id, c.settings.daily_cap, utcnow())
    return jsonify({"items": items, "next_cursor": None})


@bp.route("/accounts/<account_id>/share", methods=["PUT", "DELETE"])
@require_token
def share_account(account_id):
    """Owners share one of their own accounts with the team (PUT) or stop (DELETE)."""
    teams.require(g.role, teams.CAN_MANAGE, "share accounts")
    with ctx().db.write() as s:
        account = teams.share_account(s, g.team_id, g.user_id, account_id,
                                      request.method == "PUT", utcnow())
        return jsonify({"id": account.id, "email": account.email,
                        "shared": request.method == "PUT"})


@bp.get("/audit")
@require_token
def audit_log():
    """Who changed what in the team, newest first (`?cursor=` from next_cursor)."""
    limit = page_limit()
    cursor = request.args.get("cursor")
    before = lookup.query_id(cursor, "cursor", "cursor is not one this API gave out")
    with ctx().db.read() as s:
        items, nxt = teams.audit_log(s, g.team_id, before=before, limit=limit)
    return jsonify({"items": items, "next_cursor": str(nxt) if nxt else None})

