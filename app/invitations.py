"""The invitation email: sent from the inviting owner's own Gmail, like any message."""
from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy.orm import Session

from app import ctx
from scheduler.commands import NewMessage, Origin
from scheduler.engine import messages
from scheduler.errors import InvalidInput
from scheduler.store.db import utcnow
from scheduler.store.models import Team, User
from scheduler.typed import make

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


def invitation_message(session: Session, team_id: int, user_id: int, email: str,
                       role: str) -> messages.PreparedMessage | str:
    """The invitation email, checked and rendered (reading only), or why it cannot be
    sent (the owner has no account to send from, say): the invitation stands anyway."""
    team = session.get(Team, team_id)
    link = (ctx().settings.public_url + "/auth/login?" + urlencode({"login_hint": email}))
    try:
        return messages.prepare_message(
            session, team_id=team_id, user_id=user_id, now=utcnow(),
            origin=Origin(kind="invitation"), command=make(
                NewMessage, to=email, subject=SUBJECT, html=HTML, text=TEXT,
                transactional=True, data={
                    "team": team.name, "role": role, "link": link, "email": email,
                    "inviter": _name(session, user_id)}))
    except InvalidInput as exc:
        return exc.message


def mail_invitation(session: Session, prepared: messages.PreparedMessage | str) -> dict:
    """Queue a prepared invitation email: {"message_id"}, or {"message_id": None,
    "mail_error": why}."""
    if isinstance(prepared, str):
        return {"message_id": None, "mail_error": prepared}
    return {"message_id": messages.store_message(session, prepared).id}
