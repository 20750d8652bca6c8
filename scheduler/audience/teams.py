"""Teams: members and their roles, invitations, shared Gmail accounts, the audit log."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from scheduler.addresses import parse_address
from scheduler.errors import Conflict, Forbidden, InvalidInput, NotFound
from scheduler.store import audit, lookup, queue
from scheduler.store.audit import Actor
from scheduler.store.models import (
    ROLES,
    AccountShare,
    ApiToken,
    GmailAccount,
    Invitation,
    Membership,
    Message,
    Team,
    User,
)

# What each role may do; the web app and the API ask these, not the role names.
CAN_CHANGE = ("owner", "member")
CAN_MANAGE = ("owner",)


def role_of(session: Session, user_id: int, team_id: int) -> str | None:
    """The user's role in the team, or None when they are not a member."""
    return session.scalar(select(Membership.role).where(Membership.user_id == user_id,
                                                        Membership.team_id == team_id))


def teams_of(session: Session, user_id: int) -> list[dict]:
    """Every team the user belongs to, with their role, their personal team first."""
    rows = session.execute(
        select(Team.id, Team.name, Membership.role, User.personal_team_id)
        .join(Membership, Membership.team_id == Team.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.user_id == user_id).order_by(Team.id)).all()
    rows = sorted(rows, key=lambda r: (r.id != r.personal_team_id, r.id))
    return [{"id": r.id, "name": r.name, "role": r.role, "personal": r.id == r.personal_team_id}
            for r in rows]


def require(role: str | None, allowed: tuple[str, ...], what: str) -> None:
    """Forbidden unless `role` is one of `allowed` (viewers read only; owners manage)."""
    if role not in allowed:
        if role == "viewer":
            raise Forbidden(f"viewers can only read, not {what}")
        raise Forbidden(f"only the team's owners can {what}")


def _role(value, field: str = "role") -> str:
    if value not in ROLES:
        raise InvalidInput(f"{field} must be one of {', '.join(ROLES)}", field=field)
    return value


def members(session: Session, team_id: int) -> list[dict]:
    """The team's members: user id, address, name, role, and whether it is their own team."""
    rows = session.execute(
        select(User.id, User.email, User.name, Membership.role, User.personal_team_id)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.team_id == team_id).order_by(User.email)).all()
    return [{"user_id": r.id, "email": r.email, "name": r.name, "role": r.role,
             "personal_team": r.personal_team_id == team_id} for r in rows]


def invitations(session: Session, team_id: int) -> list[Invitation]:
    """Invitations not yet accepted nor revoked, newest first."""
    return list(session.scalars(select(Invitation).where(
        Invitation.team_id == team_id, Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None)).order_by(Invitation.id.desc())))


def invite(session: Session, actor: Actor, email, role, now: dt.datetime) -> Invitation:
    """Invite a Google address; whoever signs in with it joins with `role`.

    409 when that address is already a member or already has an open invitation.
    """
    team_id = actor.team_id
    address = parse_address(email, "email").addr_spec.lower()
    role = _role(role)
    member = session.scalar(select(User.id).join(Membership, Membership.user_id == User.id)
                            .where(User.email == address, Membership.team_id == team_id))
    if member is not None:
        raise Conflict(f"{address} is already a member of this team", field="email")
    if any(i.email == address for i in invitations(session, team_id)):
        raise Conflict(f"{address} is already invited", field="email")
    invitation = Invitation(team_id=team_id, email=address, role=role,
                            invited_by=actor.user_id, created_at=now)
    session.add(invitation)
    session.flush()
    audit.record(session, actor, "invited someone", f"invitation {invitation.id}",
                 {"email": address, "role": role}, now)
    return invitation


def revoke_invitation(session: Session, actor: Actor, invitation_id, now: dt.datetime
                      ) -> Invitation:
    """Withdraw an open invitation (404 for another team's, 409 once accepted)."""
    invitation = lookup.team_row(session, Invitation, actor.team_id, invitation_id,
                                 "invitation")
    if invitation.accepted_at is not None:
        raise Conflict("that invitation was already accepted; remove the member instead",
                       field="id")
    if invitation.revoked_at is None:
        invitation.revoked_at = now
        audit.record(session, actor, "withdrew an invitation", f"invitation {invitation.id}",
                     None, now)
    return invitation


def accept_invitations(session: Session, user: User, now: dt.datetime) -> list[int]:
    """Join every team that invited this user's address; returns the teams joined."""
    joined = []
    for invitation in session.scalars(select(Invitation).where(
            Invitation.email == user.email, Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None)).order_by(Invitation.id)):
        invitation.accepted_at, invitation.accepted_by = now, user.id
        if role_of(session, user.id, invitation.team_id) is None:
            session.add(Membership(team_id=invitation.team_id, user_id=user.id,
                                   role=invitation.role))
            session.flush()
            audit.record(session, Actor(invitation.team_id, user.id, "sign-in"),
                         "joined the team", f"user {user.email}",
                         {"role": invitation.role, "invitation": invitation.id}, now)
            joined.append(invitation.team_id)
    return joined


def _member(session: Session, team_id: int, user_id) -> Membership:
    uid = lookup.path_id(user_id)
    row = session.get(Membership, (team_id, uid)) if uid is not None else None
    if row is None:
        raise NotFound(f"no member {user_id}", field="user_id")
    return row


def _owners(session: Session, team_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Membership).where(
        Membership.team_id == team_id, Membership.role == "owner")) or 0


def set_role(session: Session, actor: Actor, user_id, role, now: dt.datetime) -> Membership:
    """Change a member's role; a team always keeps at least one owner (409)."""
    row = _member(session, actor.team_id, user_id)
    role = _role(role)
    if row.role == "owner" and role != "owner" and _owners(session, actor.team_id) == 1:
        raise Conflict("a team needs an owner: make someone else owner first", field="role")
    row.role = role
    audit.record(session, actor, "changed a member's role", f"user {row.user_id}",
                 {"role": role}, now)
    return row


def remove_member(session: Session, actor: Actor, user_id, now: dt.datetime) -> None:
    """Take someone out of the team: their API tokens for it stop working at once.

    Their Gmail accounts leave the team with them (shares removed); messages queued
    from those accounts are held (account_gone) until someone edits them to go from
    another account, or cancels them. A user cannot leave their personal team.
    """
    team_id = actor.team_id
    row = _member(session, team_id, user_id)
    personal = session.scalar(select(User.personal_team_id).where(User.id == row.user_id))
    if personal == team_id:
        raise Conflict("this is that user's personal team; they cannot be removed from it",
                       field="user_id")
    if row.role == "owner" and _owners(session, team_id) == 1:
        raise Conflict("a team needs an owner: make someone else owner first",
                       field="user_id")
    session.delete(row)
    session.execute(update(ApiToken).where(ApiToken.team_id == team_id,
                                           ApiToken.user_id == row.user_id,
                                           ApiToken.revoked_at.is_(None))
                    .values(revoked_at=now))
    # Their mailboxes leave with them: the team no longer sends from or reads them, and
    # what was queued from them waits for someone to choose another account.
    theirs = select(GmailAccount.id).where(GmailAccount.user_id == row.user_id)
    session.execute(delete(AccountShare).where(AccountShare.team_id == team_id,
                                               AccountShare.account_id.in_(theirs)))
    held = session.scalars(select(Message.id).where(
        Message.team_id == team_id, Message.account_id.in_(theirs),
        Message.status.in_(queue.OPEN_STATUSES))).all()
    for message_id in held:
        queue.transition(session, message_id, team_id, "edit_held", now,
                         {"reason": "account_gone", "by": "team"},
                         hold_kind="account_gone", hold_until=None,
                         error="the member whose Gmail account this was to go from left "
                               "the team; edit it to send from another account, or cancel")
    audit.record(session, actor, "removed a member", f"user {row.user_id}", None, now)


def change_team(session: Session, actor: Actor, now: dt.datetime, *, name: str | None = None,
                tracking: bool | None = None) -> Team:
    """Owners change the team's name or tracking (open pixels and click redirects)."""
    team = session.get_one(Team, actor.team_id)
    changed: dict[str, object] = {}
    if tracking is not None and tracking != team.tracking:
        team.tracking = changed["tracking"] = tracking
    if name is not None and name != team.name:
        team.name = name
        changed["name"] = name
    audit.record(session, actor, "changed team settings", f"team {team.id}",
                 {"fields": sorted(changed), **changed}, now)
    return team


def usable_accounts(team_id: int, user_id: int | None):
    """SELECT of the Gmail accounts that can send for this user in this team: their own
    (each member sends from their own mailbox) and those an owner shared with the team.
    Without a user (webhooks, schedules of a removed user), the team's own accounts."""
    shared = select(AccountShare.account_id).where(AccountShare.team_id == team_id)
    own = (GmailAccount.user_id == user_id) if user_id is not None else (
        GmailAccount.team_id == team_id)
    return (select(GmailAccount).where(or_(own, GmailAccount.id.in_(shared)))
            .order_by(GmailAccount.id))


def shared_with(session: Session, account_id: int) -> list[int]:
    """The teams an account is shared with."""
    return list(session.scalars(select(AccountShare.team_id)
                                .where(AccountShare.account_id == account_id)))


def own_account(session: Session, actor: Actor, account_id) -> GmailAccount:
    """One of the caller's own Gmail accounts, or NotFound."""
    aid = lookup.path_id(account_id)
    if aid is None:
        raise NotFound(f"no account {str(account_id)[:40]}", field="account_id")
    account = session.scalar(select(GmailAccount).where(GmailAccount.id == aid,
                                                        GmailAccount.user_id == actor.user_id))
    if account is None:
        raise NotFound(f"no account {account_id} of yours", field="account_id")
    return account


def share_account(session: Session, actor: Actor, account_id, share: bool,
                  now: dt.datetime) -> GmailAccount:
    """Share (or stop sharing) one of the caller's own accounts with the team."""
    team_id, user_id = actor.team_id, actor.user_id
    account = own_account(session, actor, account_id)
    aid = account.id
    existing = session.get(AccountShare, (aid, team_id))
    if share and existing is None:
        session.add(AccountShare(account_id=aid, team_id=team_id, shared_by=user_id,
                                 created_at=now))
    elif not share and existing is not None:
        session.delete(existing)
    audit.record(session, actor, "changed an account's sharing", f"account {aid}",
                 {"shared": share}, now)
    return account
