"""Pages for accounts (state, connect another, disconnect with revocation) and settings
(API tokens, the webhook secret, team tracking)."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app import ctx
from app.auth import login_required
from app.ui import bp
from gmail_client.oauth import CredentialsFileError, load_client_config, revoke
from scheduler import accounts, events
from scheduler.db import utcnow
from scheduler.models import ApiToken, GmailAccount, Message, Team, User
from scheduler.release import DAY, default_daily_cap


@bp.get("/accounts")
@login_required
def accounts_page():
    """Connected Gmail accounts with their state and today's sending against the cap."""
    c = ctx()
    now = utcnow()
    with c.db.read() as s:
        rows = []
        for account in s.scalars(select(GmailAccount).where(
                GmailAccount.team_id == g.team_id).order_by(GmailAccount.id)):
            sent = s.scalar(select(func.count()).select_from(Message).where(
                Message.account_id == account.id, Message.sent_at >= now - DAY))
            cap = account.daily_cap or c.settings.daily_cap or default_daily_cap(account.email)
            limited = account.limited_until and account.limited_until > now
            state = ("daily limit reached" if limited or sent >= cap else
                     "healthy" if account.status == "connected" else
                     "needs reconnecting" if account.status == "reconnect" else "disconnected")
            rows.append({"id": account.id, "email": account.email, "state": state,
                         "reason": account.status_reason, "sent": sent, "cap": cap,
                         "limited_until": account.limited_until if limited else None,
                         "scopes": account.scope_list})
    return render_template("ui/accounts.html", rows=rows)


@bp.post("/accounts/<int:account_id>/disconnect")
@login_required
def disconnect_account(account_id):
    """Revoke the account's grant at Google and forget its tokens."""
    c = ctx()
    try:
        client = load_client_config(c.settings.google_credentials)
    except CredentialsFileError as exc:
        flash(str(exc), "error")
        return redirect(url_for("ui.accounts_page"))
    with c.db.write() as s:
        account = s.scalar(select(GmailAccount).where(GmailAccount.id == account_id,
                                                      GmailAccount.team_id == g.team_id))
        if account is None:
            return render_template("ui/error.html", code=404,
                                   message="No such account in your team."), 404
        try:
            done = accounts.disconnect(s, c.cipher, account, utcnow(),
                                       lambda token: revoke(client, token))
        except Exception as exc:  # noqa: BLE001 - Google unreachable: keep the account
            s.rollback()
            flash(f"Google could not be reached to revoke the grant ({exc}); nothing "
                  f"changed.", "error")
            return redirect(url_for("ui.accounts_page"))
        email = account.email
    flash(f"{email} is disconnected" + (" and its grant revoked at Google." if done else
          "; Google no longer knew its grant."), "ok")
    return redirect(url_for("ui.accounts_page"))


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings_page():
    """API tokens, the webhook secret and team settings."""
    c = ctx()
    new_token = None
    if request.method == "POST":
        action = request.form.get("action")
        now = utcnow()
        with c.db.write() as s:
            if action == "create_token":
                from app.tokens import create_token
                email = s.scalar(select(User.email).where(User.id == g.user_id))
                new_token = create_token(s, email, request.form.get("name", "")[:200], now)
                flash("Token created: copy it now, it is not shown again.", "ok")
            elif action == "revoke_token":
                token = s.scalar(select(ApiToken).where(
                    ApiToken.id == int(request.form.get("token_id", 0) or 0),
                    ApiToken.team_id == g.team_id))
                if token is not None and token.revoked_at is None:
                    token.revoked_at = now
                    flash("Token revoked.", "ok")
            elif action == "rotate_secret":
                events.rotate_secret(s, c.cipher, g.team_id, now)
                flash("New webhook secret; the previous one works for 24 hours more.", "ok")
            elif action == "tracking":
                s.get(Team, g.team_id).tracking = request.form.get("tracking") == "on"
                flash("Team settings saved.", "ok")
        if new_token is None:
            return redirect(url_for("ui.settings_page"))
    with c.db.write() as s:
        tokens = s.scalars(select(ApiToken).where(ApiToken.team_id == g.team_id)
                           .order_by(ApiToken.id.desc())).all()
        secret, previous, until = events.webhook_secrets(s, c.cipher, g.team_id, utcnow())
        team = s.get(Team, g.team_id)
        page = render_template("ui/settings.html", tokens=tokens, new_token=new_token,
                               secret=secret, until=until, team=team)
    return page
