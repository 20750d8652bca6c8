"""The team in the API: settings, members and roles, invitations, accounts and sharing,
the audit log."""
from __future__ import annotations

from flask import Blueprint, g, jsonify

from app import actor, ctx
from app.api import Listing, responses
from app.api.automation import resume
from app.api.endpoint import route
from app.invitations import invitation_message, mail_invitation
from scheduler import commands
from scheduler.audience import guard, teams
from scheduler.audience.accounts import account_states
from scheduler.store import audit, lookup
from scheduler.store.db import utcnow
from scheduler.store.models import Team

bp = Blueprint("team", __name__)


def _team_dict(team: Team) -> dict:
    return {"id": team.id, "name": team.name, "tracking": team.tracking, "role": g.role}


def _invitation_dict(invitation) -> dict:
    return {"id": invitation.id, "email": invitation.email, "role": invitation.role,
            "created_at": invitation.created_at.isoformat()}


@route(bp, "GET", "/team", answers={200: responses.Team})
def get_team():
    """The caller's team, its settings and the caller's role."""
    with ctx().db.read() as s:
        return jsonify(_team_dict(s.get(Team, g.team_id)))


@route(bp, "PATCH", "/team", body=commands.TeamChange, answers={200: responses.Team},
       role="owner", action="change the team's settings")
def update_team(body: commands.TeamChange):
    """Owners change team settings: `name`, `tracking` (open pixels and click redirects)."""
    with ctx().db.write() as s:
        team = teams.change_team(s, actor(), utcnow(), name=body.name, tracking=body.tracking)
        return jsonify(_team_dict(team))


@route(bp, "GET", "/team/members", answers={200: responses.Page[responses.Member]})
def list_members():
    """Members with their roles."""
    with ctx().db.read() as s:
        return jsonify({"items": teams.members(s, g.team_id), "next_cursor": None})


@route(bp, "PATCH", "/team/members/<user_id>", body=commands.MemberChange,
       answers={200: responses.RoleChanged}, role="owner", action="change roles")
def change_member(user_id, body: commands.MemberChange):
    """Owners change a member's `role` (a team always keeps an owner: 409)."""
    with ctx().db.write() as s:
        row = teams.set_role(s, actor(), user_id, body.role, utcnow())
        role = row.role
    return jsonify({"user_id": row.user_id, "role": role})


@route(bp, "DELETE", "/team/members/<user_id>", answers={204: None}, role="owner",
       action="remove members")
def remove_member(user_id):
    """Owners remove a member; their tokens for this team stop working, the accounts they
    shared leave the team and messages queued from those are held."""
    with ctx().db.write() as s:
        teams.remove_member(s, actor(), user_id, utcnow())
    return "", 204


@route(bp, "GET", "/team/invitations", answers={200: responses.Page[responses.Invitation]})
def list_invitations():
    """Open invitations."""
    with ctx().db.read() as s:
        return jsonify({"items": [_invitation_dict(i) for i in teams.invitations(s, g.team_id)],
                        "next_cursor": None})


@route(bp, "POST", "/team/invitations", body=commands.NewInvitation,
       answers={201: responses.Invitation}, role="owner", action="invite people")
def create_invitation(body: commands.NewInvitation):
    """Owners invite a Google address with a role (201); `send_email` (default true) also
    mails the invitation from the owner's Gmail."""
    c = ctx()
    prepared = None
    if body.send_email:
        with c.db.read() as s:  # the email rendered before the write transaction
            prepared = invitation_message(s, g.team_id, g.user_id, body.email, body.role)
    with c.db.write() as s:
        invitation = teams.invite(s, actor(), body.email, body.role, utcnow())
        out = _invitation_dict(invitation)
        out.update(mail_invitation(s, prepared) if prepared is not None else
                   {"message_id": None})
    if out.get("message_id"):
        c.wake_worker()
    return jsonify(out), 201


@route(bp, "DELETE", "/team/invitations/<invitation_id>", answers={204: None},
       role="owner", action="withdraw invitations")
def revoke_invitation(invitation_id):
    """Owners withdraw an open invitation."""
    with ctx().db.write() as s:
        teams.revoke_invitation(s, actor(), invitation_id, utcnow())
    return "", 204


@route(bp, "GET", "/accounts", answers={200: responses.Page[responses.Account]})
def list_accounts():
    """The Gmail accounts the caller can send from in this team, with their state
    (healthy, needs reconnecting, daily limit reached with the count) and aliases."""
    c = ctx()
    with c.db.read() as s:
        items = account_states(s, g.team_id, g.user_id, c.settings.daily_cap, utcnow())
    return jsonify({"items": items, "next_cursor": None})


@route(bp, "GET", "/sending", answers={200: responses.Sending})
def sending():
    """The last 24 h of sends per account (against its cap and warm-up ceiling, with any
    pause) and per sending domain (against Gmail's bulk-sender threshold of 5,000 a day
    to personal Gmail addresses, with a warning before it is crossed)."""
    c = ctx()
    with c.db.read() as s:
        mine = s.scalars(teams.usable_accounts(g.team_id, g.user_id)).all()
        return jsonify(guard.sending_report(s, list(mine), c.settings.daily_cap, utcnow()))


def _warmup(account_id, on: bool):
    c = ctx()
    with c.db.write() as s:
        guard.set_warmup(s, actor(), account_id, on, utcnow())
        mine = s.scalars(teams.usable_accounts(g.team_id, g.user_id)).all()
        return jsonify(guard.sending_report(s, list(mine), c.settings.daily_cap, utcnow()))


@route(bp, "PUT", "/accounts/<account_id>/warmup", answers={200: responses.Sending},
       role="member")
def start_warmup(account_id):
    """Warm up one of your accounts: a daily ceiling from 20 a day, growing over 15 days
    (what exceeds it is held until the window reopens)."""
    return _warmup(account_id, True)


@route(bp, "DELETE", "/accounts/<account_id>/warmup", answers={200: responses.Sending},
       role="member")
def stop_warmup(account_id):
    """End the warm-up: the account's own daily cap applies again."""
    return _warmup(account_id, False)


@route(bp, "POST", "/accounts/<account_id>/resume", answers={200: responses.Resumed},
       role="member")
def resume_account(account_id):
    """Resume one of your accounts the sender guard paused: what it held goes now."""
    return resume("account", account_id)


def _share(account_id, shared: bool):
    with ctx().db.write() as s:
        account = teams.share_account(s, actor(), account_id, shared, utcnow())
        return jsonify({"id": account.id, "email": account.email, "shared": shared})


@route(bp, "PUT", "/accounts/<account_id>/share", answers={200: responses.Shared},
       role="owner", action="share accounts")
def share_account(account_id):
    """Owners share one of their own accounts with the team."""
    return _share(account_id, True)


@route(bp, "DELETE", "/accounts/<account_id>/share", answers={200: responses.Shared},
       role="owner", action="share accounts")
def unshare_account(account_id):
    """Owners stop sharing one of their own accounts with the team."""
    return _share(account_id, False)


@route(bp, "GET", "/audit", query=Listing, answers={200: responses.Page[responses.AuditEntry]})
def audit_log(query: Listing):
    """Who changed what in the team, newest first (`?cursor=` from next_cursor)."""
    before = lookup.query_id(query.cursor, "cursor", "cursor is not one this API gave out")
    with ctx().db.read() as s:
        items, nxt = audit.audit_log(s, g.team_id, before=before, limit=query.limit)
    return jsonify({"items": items, "next_cursor": str(nxt) if nxt else None})
