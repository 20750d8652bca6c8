"""Sign in with Google: the OAuth web flow (state + PKCE), and sign out."""
from __future__ import annotations

import logging
from functools import wraps

from flask import Blueprint, abort, flash, g, redirect, request, session, url_for
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy import select

from app import ctx, web_sessions
from gmail_client.errors import GmailError
from gmail_client.oauth import (
    CredentialsFileError,
    can_compose,
    can_read,
    can_read_profile,
    can_send,
    credentials_to_info,
    email_from_id_token,
    finish_authorization,
    granted_scopes,
    scopes_for,
    start_authorization,
)
from scheduler.audience import teams
from scheduler.audience.accounts import connect_account, sign_in
from scheduler.delivery.notifications import PushNotifications, watch_account
from scheduler.errors import DomainError
from scheduler.store.audit import Actor
from scheduler.store.audit import record as audit_entry
from scheduler.store.db import utcnow
from scheduler.store.models import Team, User

bp = Blueprint("auth", __name__, url_prefix="/auth")
log = logging.getLogger("mailrelease.auth")


def redirect_uri() -> str:
    """The callback URL registered with Google (follows MAILRELEASE_PUBLIC_URL)."""
    return ctx().settings.public_url + "/auth/callback"


READS = ("GET", "HEAD", "OPTIONS")


def login_required(view):
    """Send visitors without a session to the home page to sign in; set g.user_id,
    g.team_id and g.role (re-read every request: a role change or a removal from the team
    takes effect at once); viewers' forms are refused unless the view is `viewer_ok`."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if "user_id" not in session:
            flash("Sign in with Google first.", "error")
            return redirect(url_for("ui.queue.home"))
        g.user_id, g.team_id = session["user_id"], session["team_id"]
        g.email = session.get("email")
        with ctx().db.read() as s:
            if not web_sessions.valid(s, session.get("sid"), g.user_id):
                session.clear()  # signed out (here or everywhere), or from before sessions
                flash("Your session has ended; sign in again.", "error")
                return redirect(url_for("ui.queue.home"))
            g.role = teams.role_of(s, g.user_id, g.team_id)
            if g.role is None:  # removed from that team: back to their own
                personal = s.scalar(select(User.personal_team_id)
                                    .where(User.id == g.user_id))
                g.role = teams.role_of(s, g.user_id, personal) if personal else None
                if g.role is not None:
                    g.team_id = session["team_id"] = personal
                    flash("You are no longer a member of that team.", "warning")
        if g.role is None:
            session.clear()
            flash("Your account no longer exists here; sign in again.", "error")
            return redirect(url_for("ui.queue.home"))
        if request.method not in READS and g.role == "viewer" and not getattr(
                view, "viewer_ok", False):
            abort(403, "Viewers can read everything in the team but change nothing; ask "
                       "an owner for the member role.")
        return view(*args, **kwargs)
    return wrapper


def viewer_ok(view):
    """Mark a view that changes nothing of the team's (switching teams), open to viewers."""
    view.viewer_ok = True
    return view


@bp.get("/login")
def login():
    """Start Google's consent flow, remembering state and the PKCE verifier in the session."""
    settings = ctx().settings
    try:
        client = ctx().oauth()
        start = start_authorization(client, scopes_for(settings.gmail_scopes), redirect_uri(),
                                    login_hint=request.args.get("login_hint"))
    except (CredentialsFileError, ValueError) as exc:
        flash(f"Google sign-in is not set up: {exc}", "error")
        return redirect(url_for("ui.queue.home"))
    session["oauth"] = {"state": start.state, "code_verifier": start.code_verifier}
    if request.args.get("connect") and "user_id" in session:
        # Another mailbox for the member signed in, in the team they work in: not a
        # sign-in as that address (which would be another user with an empty team).
        session["oauth"]["connect"] = [session["user_id"], session["team_id"]]
    return redirect(start.url)


@bp.get("/callback")
def callback():
    """Finish the flow: tokens, the account's address from users.getProfile, the session."""
    c = ctx()
    pending = session.pop("oauth", None)
    if request.args.get("error"):
        flash(f"Google sign-in was not completed ({request.args['error']}).", "error")
        return redirect(url_for("ui.queue.home"))
    if not pending or request.args.get("state") != pending["state"]:
        flash("That sign-in link is stale or forged (state mismatch); please start again.",
              "error")
        return redirect(url_for("ui.queue.home"))
    settings = c.settings
    try:
        client = c.oauth()
        creds = finish_authorization(
            client, scopes_for(settings.gmail_scopes), redirect_uri(), pending["state"],
            pending["code_verifier"], settings.public_url + request.full_path)
        granted = granted_scopes(creds)
        if not can_send(granted):
            flash("Google did not grant permission to send mail (gmail.send), so mailrelease "
                  "cannot release messages from this account. Sign in again and allow it.",
                  "error")
            return redirect(url_for("ui.queue.home"))
        send_as = None
        if can_read_profile(granted):
            service = c.gmail.for_credentials(creds)
            address = service.profile()["emailAddress"]
            if can_read(granted):
                from app.gmail_threads import aliases
                try:
                    send_as = aliases(service)
                except GmailError as exc:  # aliases are a convenience: sign in anyway
                    log.warning("action=send_as_unread reason=%s", exc)
        else:
            address = email_from_id_token(getattr(creds, "id_token", None))
            if not address:
                raise ValueError("Google returned no verified address (openid email scopes)")
    except (CredentialsFileError, OAuth2Error, GmailError, ValueError) as exc:
        log.warning("action=signin_failed class=%s", type(exc).__name__)
        flash(f"Google sign-in failed: {exc}", "error")
        return redirect(url_for("ui.queue.home"))
    if pending.get("connect") and pending["connect"][0] == session.get("user_id"):
        return _connected(address, creds, granted, send_as, *pending["connect"])
    with c.db.write() as s:
        who = sign_in(s, c.cipher, email=address,
                      token_info=credentials_to_info(creds), scopes=granted, now=utcnow(),
                      send_as=send_as)
        sid = web_sessions.start(s, who.user_id, utcnow())
    session.clear()
    # Someone who signs in through an invitation lands in the team that invited them.
    session.update(user_id=who.user_id, team_id=(who.joined or (who.team_id,))[-1],
                   email=who.email, sid=sid)
    session.permanent = True
    log.info("action=signin user=%s account=%s new=%s scopes=%d", who.user_id,
             who.account_id, who.newly_created, len(granted))
    if PushNotifications.configured(c.settings):
        try:  # replies in seconds from now on; a failure is shown on the Accounts page
            watch_account(c.db, c.settings, c.gmail, who.account_id, utcnow())
        except Exception:  # noqa: BLE001 - never a reason for sign-in to fail
            log.exception("action=watch_at_signin_failed account=%s", who.account_id)
    missing = []
    if not can_read(granted):
        missing.append("read access (safe resend checks after a crash, bounce and reply "
                       "detection are off)")
    if not can_compose(granted):
        missing.append("drafts (Gmail drafts as templates are off)")
    if who.joined:
        with c.db.read() as s:
            names = s.scalars(select(Team.name).where(Team.id.in_(who.joined))).all()
        flash(f"You joined {', '.join(names)}.", "ok")
    flash(f"Connected {who.email}." + (" Not granted: " + "; ".join(missing) + "."
                                        if missing else ""), "warning" if missing else "ok")
    return redirect(url_for("ui.queue.home"))


def _connected(address: str, creds, granted: list[str], send_as, user_id: int, team_id: int):
    """The end of "Connect another Gmail account": the mailbox joins the member's accounts."""
    c = ctx()
    try:
        with c.db.write() as s:
            account = connect_account(s, c.cipher, user_id=user_id, team_id=team_id,
                                      email=address, token_info=credentials_to_info(creds),
                                      scopes=granted, now=utcnow(), send_as=send_as)
            account_id = account.id
            audit_entry(s, Actor(team_id, user_id, "web"), "connected a Gmail account",
                        f"account {account_id}", None, utcnow())
    except DomainError as exc:
        flash(f"Not connected: {exc.message}", "error")
        return redirect(url_for("ui.settings.accounts_page"))
    if PushNotifications.configured(c.settings):
        try:
            watch_account(c.db, c.settings, c.gmail, account_id, utcnow())
        except Exception:  # noqa: BLE001 - never a reason for connecting to fail
            log.exception("action=watch_at_connect_failed account=%s", account_id)
    flash(f"Connected {address}: you can send from it in this team.", "ok")
    return redirect(url_for("ui.settings.accounts_page"))


@bp.post("/logout")
def logout():
    """End this session on the server too (the Gmail connection stays for scheduled
    messages)."""
    with ctx().db.write() as s:
        web_sessions.end(s, session.get("sid"), utcnow())
    session.clear()
    flash("Signed out.", "ok")
    return redirect(url_for("ui.queue.home"))


@bp.post("/logout/everywhere")
@login_required
def logout_everywhere():
    """End every session of this user, in every browser."""
    with ctx().db.write() as s:
        count = web_sessions.end_all(s, g.user_id, utcnow())
    session.clear()
    flash(f"Signed out everywhere ({count} session{'s' if count != 1 else ''}).", "ok")
    return redirect(url_for("ui.queue.home"))
