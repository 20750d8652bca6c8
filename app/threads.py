"""Reading a mailbox's threads and queueing a reply in one, for the API and the pages."""
from __future__ import annotations

from sqlalchemy import update

from app import ctx, idempotent
from gmail_client.api import GmailService
from gmail_client.errors import GmailError
from gmail_client.oauth import can_read
from scheduler import drafts, idempotency, messages, replies, teams, templates
from scheduler.db import utcnow
from scheduler.errors import InvalidInput, NotFound
from scheduler.models import GmailAccount


def aliases(service: GmailService) -> list[dict]:
    """The mailbox's verified "Send mail as" addresses (the primary one included)."""
    return [{"email": a["sendAsEmail"].lower(), "name": a.get("displayName") or "",
             "default": bool(a.get("isDefault"))}
            for a in service.send_as() if a.get("verificationStatus", "accepted") == "accepted"
            or a.get("isPrimary")]


def mailbox(team_id: int, user_id: int, account_id) -> tuple[GmailAccount, GmailService]:
    """One of the accounts the user sends from in this team (by id; default their first
    that can read mail), detached, and a Gmail service on it."""
    c = ctx()
    with c.db.read() as s:
        usable = [a for a in s.scalars(teams.usable_accounts(team_id, user_id))
                  if can_read(a.scope_list)]
        if account_id not in (None, ""):
            usable = [a for a in usable if str(a.id) == str(account_id)]
            if not usable:
                raise NotFound(f"no account {account_id} that can read mail",
                               field="account_id")
        if not usable:
            raise InvalidInput("no connected account of yours can read mail: sign in with "
                               "Google and allow reading", field="account_id")
        account = usable[0]
        s.expunge(account)
    return account, drafts.open_service(c.settings, c.cipher, account)


def _after(account: GmailAccount, service: GmailService, fresh_aliases=None) -> None:
    """Keep a refreshed access token, and the aliases just read."""
    with ctx().db.write() as s:
        drafts.save_refresh(s, ctx().cipher, account, service, utcnow())
        if fresh_aliases is not None:
            s.execute(update(GmailAccount).where(GmailAccount.id == account.id)
                      .values(send_as=fresh_aliases))
            account.send_as = fresh_aliases


def recent(team_id: int, user_id: int, account_id, query: str, limit: int = 20):
    """(account, threads) of the mailbox, newest activity first; aliases refreshed."""
    account, service = mailbox(team_id, user_id, account_id)
    try:
        found_aliases = aliases(service)
        account.send_as = found_aliases
        found = replies.recent_threads(service, account, query, limit)
    except GmailError as exc:
        raise drafts.GmailUnavailable(f"Gmail said: {exc}") from None
    _after(account, service, found_aliases)
    return account, found


def one(team_id: int, user_id: int, account_id, thread_id: str):
    """(account, thread) for the reply page and the preview."""
    account, service = mailbox(team_id, user_id, account_id)
    try:
        thread = replies.read_thread(service, account, thread_id)
    except GmailError as exc:
        raise drafts.gmail_failure(exc, "thread", "thread_id") from None
    _after(account, service)
    return account, thread


def reply(team_id: int, user_id: int, account_id, thread_id: str, body: dict,
          form_key: tuple[str, str] | None = None):
    """Queue a reply in the thread (a Message, still in its session's transaction) and
    return its API form; 422 naming the field when the body is wrong. `form_key` (the
    reply page's) makes a double submit replay the first reply (idempotency.Replay)."""
    account, thread = one(team_id, user_id, account_id, thread_id)
    c = ctx()
    with c.db.write() as s:
        held = idempotent.claim_form(s, team_id, form_key)
        template = None
        if body.get("template_id") is not None:
            template = templates.get_template(s, team_id, body["template_id"])
        message_body = replies.reply_body(thread, account, body, template)
        message = messages.create_message(s, team_id=team_id, user_id=user_id,
                                          body=message_body, now=utcnow())
        if message.account_id != account.id:
            raise InvalidInput(f"{message_body['from']} is not an address of {account.email}, "
                               "whose thread this is", field="from")
        message.template_id = template.id if template else None
        out = messages.message_as_dict(message)
        idempotency.remember(s, held, 201, out)
        release_at = message.release_at
    if out["status"] == "scheduled":
        c.wake_worker(release_at)
    return out


def preview(team_id: int, user_id: int, account_id, thread_id: str, body: dict) -> dict:
    """The reply as the customer would get it, without queueing anything."""
    account, thread = one(team_id, user_id, account_id, thread_id)
    with ctx().db.read() as s:
        template = None
        if body.get("template_id") not in (None, ""):
            template = templates.get_template(s, team_id, body["template_id"])
        message_body = replies.reply_body(thread, account, body, template)
        to = messages.parse_address(message_body["to"], "to")
        _, recipient = templates.recipient(s, team_id, to)
        parts = {"subject": message_body["subject"], "html": message_body["html"],
                 "text": message_body["text"]}
        out = templates.preview(parts, {**recipient, **message_body["data"]}, ctx().content)
    out.update(to=message_body["to"], thread=thread.as_dict())
    return out

