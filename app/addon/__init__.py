"""The Gmail add-on, served over Google's HTTP runtime: Google posts an event object to
/addon/homepage, /addon/message (an email is open), /addon/compose (a draft) and
/addon/action/NAME (a card's button), and we answer card JSON.

Every request's `Authorization: Bearer` ID token must be Google's, for this endpoint's own
URL (MAILRELEASE_PUBLIC_URL + path), from the add-on's service account
(MAILRELEASE_ADDON_SERVICE_ACCOUNT), verified and unexpired: anything else is a 401 and
shows nothing. The user is the verified email of the event's userIdToken, matched to a
signed-in mailrelease user; a Google user we do not know gets a card saying how to connect.
"""
from __future__ import annotations

import logging

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from app import csrf, ctx
from app.addon import cards, views
from app.addon.events import AddonEvent, read_event
from gmail_client.oidc import InvalidToken
from scheduler.audience import teams
from scheduler.errors import DomainError
from scheduler.store.models import GmailAccount, Membership, User

log = logging.getLogger("mailrelease.addon")
bp = Blueprint("addon", __name__, url_prefix="/addon")
csrf.exempt(bp)  # Google signs each request (the ID token): there is no form to protect


def _refused(status: int, message: str):
    return jsonify({"error": {"code": "unauthorized" if status == 401 else "forbidden",
                              "message": message}}), status


def _team_of(user: User) -> int | None:
    """The team the add-on acts in: the one where this mailbox is connected for the
    user, else their own team."""
    with ctx().db.read() as s:
        found = s.scalar(select(GmailAccount.team_id).join(
            Membership, (Membership.team_id == GmailAccount.team_id)
            & (Membership.user_id == user.id)).where(GmailAccount.email == user.email)
            .order_by(GmailAccount.id).limit(1))
    return found or user.personal_team_id


@bp.before_request
def verify():
    """Google's token for this endpoint, then the event, then who the user is."""
    c = ctx()
    settings = c.settings
    if not settings.addon_service_account:
        return _refused(403, "the Gmail add-on is not configured "
                             "(MAILRELEASE_ADDON_SERVICE_ACCOUNT)")
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return _refused(401, "a Bearer ID token from Google is required")
    audience = settings.public_url.rstrip("/") + request.path
    try:
        c.wiring.google_tokens.verify(header[7:], audience, settings.addon_service_account)
    except InvalidToken as exc:
        log.warning("action=addon_refused path=%s reason=%s", request.path,
                    " ".join(str(exc).split())[:200])
        return _refused(401, "the token is not Google's for this endpoint")
    event = read_event(request.get_json(silent=True))
    if event is None:
        return jsonify({"error": {"code": "bad_request",
                                  "message": "the body is not an add-on event object"}}), 400
    g.event = event
    g.user_id = None
    token = event.authorizationEventObject.userIdToken
    if not token:
        return None
    try:
        email = c.wiring.google_tokens.identify(token)
    except InvalidToken as exc:
        log.warning("action=addon_user_unknown reason=%s", " ".join(str(exc).split())[:200])
        return None
    with c.db.read() as s:
        user = s.scalar(select(User).where(User.email == email))
        if user is not None:
            s.expunge(user)
    if user is None:
        return None
    team_id = _team_of(user)
    with c.db.read() as s:
        role = teams.role_of(s, user.id, team_id) if team_id else None
    if role is None:
        return None
    g.user_id, g.team_id, g.role, g.email = user.id, team_id, role, email
    return None


def _answer(make_card):
    event: AddonEvent = g.event
    if g.user_id is None:
        return jsonify(cards.show(views.connect_card()))
    try:
        return jsonify(cards.show(make_card(event)))
    except DomainError as exc:
        return jsonify(cards.show(cards.Card("mailrelease", (cards.Section((
            cards.Paragraph(exc.message),)),))))


@bp.post("/homepage")
def homepage():
    """The homepage trigger: the queue at a glance."""
    return _answer(views.homepage)


@bp.post("/message")
def message():
    """The contextual trigger: an email is open."""
    return _answer(views.message_card)


@bp.post("/compose")
def compose():
    """The compose trigger: a draft is open."""
    return _answer(views.compose_card)


@bp.post("/action/<name>")
def action(name):
    """A card's button or form."""
    if g.user_id is None:
        return jsonify(cards.navigate(update=views.connect_card()))
    return jsonify(views.action(name, g.event))
