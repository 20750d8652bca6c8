"""The invitation email: sent from the inviting owner's own Gmail, like any message."""
from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy.orm import Session

from app import ctx
from scheduler import messages
from scheduler.commands import NewMessage, Origin
from scheduler.typed import make
from scheduler.db import utcnow
from scheduler.errors import InvalidInput
from scheduler.models import Invitation, Team, User

SUBJECT = "Join {{ team }} on mailrelease"
HTML = """<p>Hello,</p>
<p>{{ inviter }} invited you to the team <strong>{{ team }}</strong> on mailrelease
as {{ role }}.</p>
<p><a href="{{ link }}">Sign in with your Google account {{ email }}</a> to join.</p>"""
TEXT = """Hello,

{{ inviter }} invited you to the team {{ team }} on mailrelease as {{ role }}.
Sign in with your Google account {{ email }} to join: {{ link }}"""


def _name(session: Session, user_id: int) -> str:
    user = session.get(User, user_id)
    return user.name or user.email


def mail_invitation(session: Session, invitation: Invitation, user_id: int) -> dict:
    """Queue the invitation email now; {"message_id"} or, when the owner has no account to
    send from, {"message_id": None, "mail_error": why} (the invitation stands anyway)."""
    team = session.get(Team, invitation.team_id)
    link = (ctx().settings.public_url + "/auth/login?"
            + urlencode({"login_hint": invitation.email}))
    try:
        message = messages.create_message(
            session, team_id=invitation.team_id, user_id=user_id, now=utcnow(),
            origin=Origin(kind="invitation"), command=make(
                NewMessage, to=invitation.email, subject=SUBJECT, html=HTML, text=TEXT,
                transactional=True, data={
                    "team": team.name, "role": invitation.role, "link": link,
                    "email": invitation.email, "inviter": _name(session, user_id)}))
    except InvalidInput as exc:
        return {"message_id": None, "mail_error": exc.message}
    return {"message_id": message.id}
