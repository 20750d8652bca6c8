"""Reading a mailbox's threads and queueing a reply in one, for the API and the pages."""
from __future__ import annotations

from sqlalchemy import update

from app import actor, ctx, idempotent
from gmail_client.api import GmailService
from gmail_client.errors import GmailError
from gmail_client.oauth import can_read
from scheduler.audience import contacts, teams
from scheduler.commands import Origin, ThreadReply
from scheduler.content import drafts, templates
from scheduler.delivery import replies
from scheduler.engine import messages
from scheduler.errors import InvalidInput, NotFound
from scheduler.store import idempotency
from scheduler.store.db import utcnow
from scheduler.store.models import GmailAccount


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
    return account, c.gmail_for(account)


def _after(account: GmailAccount, service: GmailService, fresh_aliases=None) -> None:
    """Keep a refreshed access token, and the aliases just read."""
    with ctx().db.write() as s:
        ctx().gmail.keep_refreshed_account(s, account, service, utcnow())
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


def read(team_id: int, user_id: int, account_id, thread_id: str):
    """(account, thread, its latest messages in full) for the reply page."""
    account, service = mailbox(team_id, user_id, account_id)
    try:
        thread = replies.read_thread(service, account, thread_id)
        said = replies.read_conversation(service, account, thread_id)
    except GmailError as exc:
        raise drafts.gmail_failure(exc, "thread", "thread_id") from None
    _after(account, service)
    return account, thread, said


def reply(team_id: int, user_id: int, account_id, thread_id: str, command: ThreadReply,
          form_key: tuple[str, str] | None = None, unless_reply: bool = False):
    """Queue a reply in the thread and return its API form; 422 naming the field when the
    command is wrong. `form_key` (the reply page's) makes a double submit replay the first
    reply (idempotency.Replay). `unless_reply`: a follow-up, skipped if anyone answers in
    the thread before it goes (the release looks at the thread last). Rendered in a read
    transaction, stored in a write one."""
    account, thread = one(team_id, user_id, account_id, thread_id)
    c = ctx()
    with c.db.read() as s:
        template = None
        if command.template_id is not None:
            template = templates.get_template(s, team_id, command.template_id)
        message = replies.reply_message(thread, account, command, template)
        prepared = messages.prepare_message(s, team_id=team_id, user_id=user_id,
                                            command=message, now=utcnow(),
                                            origin=Origin(kind="reply"))
    if prepared.values["account_id"] != account.id:
        raise InvalidInput(f"{message.sender} is not an address of {account.email}, "
                           "whose thread this is", field="from")
    if template is not None:
        prepared.values["template_id"] = template.id
    if unless_reply:
        prepared.values["follow_unless"] = "reply"
    with c.db.write() as s:
        held = idempotent.claim_form(s, team_id, form_key)
        stored = messages.store_message(s, prepared, actor())
        out = messages.message_as_dict(stored)
        idempotency.remember(s, held, 201, out)
        release_at = stored.release_at
    if out["status"] == "scheduled":
        c.wake_worker(release_at)
    return out


def preview(team_id: int, user_id: int, account_id, thread_id: str,
            command: ThreadReply) -> dict:
    """The reply as the customer would get it, without queueing anything."""
    account, thread = one(team_id, user_id, account_id, thread_id)
    with ctx().db.read() as s:
        template = None
        if command.template_id is not None:
            template = templates.get_template(s, team_id, command.template_id)
        message = replies.reply_message(thread, account, command, template)
        _, recipient = contacts.recipient(s, team_id, messages.parse_address(message.to,
                                                                              "to"))
        parts = {"subject": message.subject, "html": message.html, "text": message.text}
        out = templates.preview(parts, {**recipient, **message.data}, ctx().content,
                                ctx().links)
    out.update(to=message.to, thread=thread.as_dict())
    return out
