"""Pages for accounts (state, connect another, disconnect with revocation) and settings
(API tokens, the webhook secret, team tracking)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app import actor, audit, ctx
from app.auth import login_required
from app.tokens import create_token, revoke_token
from gmail_client.oauth import CredentialsFileError, revoke
from scheduler.audience import accounts, guard, teams
from scheduler.automation import events
from scheduler.errors import DomainError
from scheduler.store import lookup
from scheduler.store.db import utcnow
from scheduler.store.models import ApiToken, GmailAccount, Message, Team, User
from scheduler.store.queue import OPEN_STATUSES

bp = Blueprint("settings", __name__)


@bp.get("/accounts")
@login_required
def accounts_page():
    """The accounts one can send from in this team, their state and today's sending
    against the cap; owners share their own accounts with the team and set caps."""
    c = ctx()
    with c.db.read() as s:
        rows = accounts.account_states(s, g.team_id, g.user_id, c.settings.daily_cap,
                                       utcnow())
        waiting = dict(s.execute(select(Message.account_id, func.count()).where(
            Message.team_id == g.team_id, Message.status.in_(OPEN_STATUSES))
            .group_by(Message.account_id)).all())
    for row in rows:
        row["open_count"] = waiting.get(row["id"], 0)
    return render_template("ui/accounts.html", rows=rows,
                           manage=g.role in teams.CAN_MANAGE)


def _own_account(s, account_id: int) -> GmailAccount | None:
    return s.scalar(select(GmailAccount).where(GmailAccount.id == account_id,
                                               GmailAccount.user_id == g.user_id))


def _switch(account_id, field: str, allowed: tuple[str, ...], what: str, change, said):
    """Turn something of one of the caller's accounts on or off (the form's `field`):
    `change(session, on)` returns the account, `said(email, on)` the confirmation."""
    on = request.form.get(field) == "on"
    try:
        teams.require(g.role, allowed, what)
        with ctx().db.write() as s:
            email = change(s, on).email
    except DomainError as exc:
        audit.skip()
        abort(exc.status, exc.message)
    flash(said(email, on), "ok")
    return redirect(url_for("ui.settings.accounts_page"))


@bp.post("/accounts/<int:account_id>/share")
@login_required
def share_account(account_id):
    """Owners share one of their own accounts with the team, or stop sharing it."""
    return _switch(account_id, "shared", teams.CAN_MANAGE, "share accounts",
                   lambda s, on: teams.share_account(s, actor(), account_id, on, utcnow()),
                   lambda email, on: f"{email} is {'now' if on else 'no longer'} shared "
                                     f"with the team.")


@bp.post("/accounts/<int:account_id>/warmup")
@login_required
def warmup(account_id):
    """Start or end the warm-up of one of your own accounts (see the sender guard)."""
    return _switch(account_id, "warmup", teams.CAN_CHANGE, "warm up accounts",
                   lambda s, on: guard.set_warmup(s, actor(), account_id, on, utcnow()),
                   lambda email, on: f"{email} now warms up: {guard.WARMUP_STEPS[0]} a day "
                                     f"at first, more every two days." if on else
                                     f"{email} no longer warms up: its daily cap applies.")


@bp.post("/accounts/<int:account_id>/cap")
@login_required
def account_cap(account_id):
    """Owners set the daily sending cap of one of their own accounts (blank: Gmail's)."""
    raw = request.form.get("daily_cap", "").strip()
    with ctx().db.write() as s:
        account = _own_account(s, account_id)
        if account is None or g.role not in teams.CAN_MANAGE:
            audit.skip()
            abort(404 if account is None else 403)
        if raw and (not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 10000):
            audit.skip()
            flash("The daily cap must be a whole number from 1 to 10,000.", "error")
            return redirect(url_for("ui.settings.accounts_page"))
        accounts.set_daily_cap(s, actor(), account, int(raw) if raw else None, utcnow())
        email = account.email
    flash(f"Daily cap of {email} saved.", "ok")
    return redirect(url_for("ui.settings.accounts_page"))


@bp.post("/accounts/<int:account_id>/disconnect")
@login_required
def disconnect_account(account_id):
    """Revoke the account's grant at Google and forget its tokens."""
    c = ctx()
    try:
        client = c.oauth()
    except CredentialsFileError as exc:
        flash(str(exc), "error")
        return redirect(url_for("ui.settings.accounts_page"))
    # Google is called between two transactions, never inside one.
    with c.db.read() as s:
        account = _own_account(s, account_id)
        if account is None:
            audit.skip()
            return render_template("ui/error.html", code=404,
                                   message="No such account of yours."), 404
        email, blob = account.email, account.token_blob
        token = accounts.grant_token(c.cipher, account)
    try:
        done = bool(token) and revoke(client, token)
    except Exception as exc:  # noqa: BLE001 - Google unreachable: keep the account
        audit.skip()
        flash(f"Google could not be reached to revoke the grant ({exc}); nothing "
              f"changed.", "error")
        return redirect(url_for("ui.settings.accounts_page"))
    with c.db.write() as s:
        if not accounts.disconnect(s, c.cipher, account_id, blob, utcnow(), actor()):
            audit.skip()
            flash(f"{email} was connected again meanwhile; its new grant is kept.",
                  "warning")
            return redirect(url_for("ui.settings.accounts_page"))
    flash(f"{email} is disconnected" + (" and its grant revoked at Google." if done else
          "; Google no longer knew its grant."), "ok")
    return redirect(url_for("ui.settings.accounts_page"))


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings_page():
    """API tokens (one's own; owners see the team's), the webhook secret (not for viewers)
    and the team's settings (owners)."""
    c = ctx()
    new_token = new_secret = None
    if request.method == "POST":
        action = request.form.get("action")
        now = utcnow()
        with c.db.write() as s:
            if action == "create_token":
                email = s.scalar(select(User.email).where(User.id == g.user_id))
                new_token = create_token(s, email, request.form.get("name", "")[:200], now,
                                         g.team_id, actor=actor())
                flash("Token created: copy it now, it is not shown again.", "ok")
            elif action == "revoke_token":
                raw_id = request.form.get("token_id", "")
                token_id = lookup.path_id(raw_id)
                token = s.scalar(_tokens().where(ApiToken.id == token_id)) if token_id else None
                if token is None or token.revoked_at is not None:
                    audit.skip()
                    abort(404)
                revoke_token(s, actor(), token, now)
                flash("Token revoked.", "ok")
            elif action == "rotate_secret":
                events.rotate_secret(s, c.cipher, actor(), now)
                new_secret = events.webhook_secrets(s, c.cipher, g.team_id, now)[0]
                flash("New webhook secret: copy it now, this page does not show it again. "
                      "The previous one works for 24 hours more.", "ok")
            elif action == "team" and g.role in teams.CAN_MANAGE:
                teams.change_team(s, actor(), now,
                                  tracking=request.form.get("tracking") == "on",
                                  name=request.form.get("name", "").strip()[:200] or None)
                flash("Team settings saved.", "ok")
            else:
                audit.skip()
                abort(403 if action == "team" else 400)
        if new_token is None and new_secret is None:
            return redirect(url_for("ui.settings.settings_page"))
    with c.db.write() as s:  # the webhook secret is made on first sight
        tokens = s.scalars(_tokens().order_by(ApiToken.id.desc())).all()
        emails = dict(s.execute(select(User.id, User.email).where(
            User.id.in_({t.user_id for t in tokens}))).all())
        team = s.get(Team, g.team_id)
        hint = until = None
        if g.role != "viewer":
            # Shown in full once (when made or rotated), like a token; then only its start.
            first_sight = team.webhook_secret is None
            secret, previous, until = events.webhook_secrets(s, c.cipher, g.team_id, utcnow())
            if first_sight:
                new_secret = secret
            hint = secret[:10] + "…"
        page = render_template("ui/settings.html", tokens=tokens, new_token=new_token,
                               new_secret=new_secret, hint=hint, until=until, team=team,
                               emails=emails, manage=g.role in teams.CAN_MANAGE)
    return page


def _tokens():
    """The tokens one may see and revoke: one's own in this team; an owner, all of it."""
    query = select(ApiToken).where(ApiToken.team_id == g.team_id)
    if g.role not in teams.CAN_MANAGE:
        query = query.where(ApiToken.user_id == g.user_id)
    return query
