"""What the Gmail add-on shows and does: the homepage (the queue at a glance), the card
beside an open message (the other party, what we sent them, what is pending in the
thread, and actions), the compose card (insert a template, or schedule instead), and
each card action. Called with the request's verified user (g.user_id, g.team_id)."""
from __future__ import annotations

import datetime as dt
import html
from email.utils import getaddresses, parseaddr

from flask import g
from sqlalchemy import select

from app import actor, ctx, gmail_threads
from app.addon import cards as c
from app.addon.events import AddonEvent
from gmail_client.errors import GmailError
from scheduler.audience import contacts, guard, teams
from scheduler.audience.suppression import UNSUBSCRIBES, subscription_of, suppress
from scheduler.automation import campaigns
from scheduler.commands import LocalTime, NewContact, NewMessage, ThreadReply
from scheduler.content import templates
from scheduler.engine import cancelling, correspondence, messages
from scheduler.engine.threads import own_addresses
from scheduler.errors import Conflict, DomainError, InvalidInput
from scheduler.store.db import utcnow
from scheduler.store.models import Campaign, GmailAccount, Message
from scheduler.timing.release_at import zone_or_utc
from scheduler.typed import make

HOME = "home"
MAX_DAYS = 60


def url(path: str) -> str:
    return ctx().settings.public_url.rstrip("/") + path


def act(name: str, **parameters) -> c.Action:
    """A button's call back to /addon/action/NAME."""
    return c.Action(url(f"/addon/action/{name}"),
                    {k: str(v) for k, v in parameters.items() if v is not None})


def when(moment: dt.datetime | None, zone: dt.tzinfo) -> str:
    """A time as the user reads it: in their zone, with the zone's name."""
    if moment is None:
        return "not set"
    local = moment.astimezone(zone)
    return local.strftime("%a %d %b %Y, %H:%M ") + (local.tzname() or "")


def _subject(m: Message) -> str:
    return m.subject or m.subject_tpl


def _address(header: str) -> str:
    return parseaddr(header or "")[1].lower()


def _web(path: str, label: str) -> c.Button:
    return c.Button(label, c.Link(url(path)))


# -- not signed in ----------------------------------------------------------------------

def connect_card() -> c.Card:
    """For a Google user who has no mailrelease account yet: how to connect (no data)."""
    return c.Card("Connect mailrelease", (c.Section((
        c.Paragraph("This add-on shows your mailrelease queue and acts on it. Sign in to "
                    "mailrelease with this same Google account once, then open the add-on "
                    "again."),
        c.Buttons((c.Button("Sign in to mailrelease", c.Link(url("/auth/login")),
                            filled=True),)),
    )),))


# -- the homepage -----------------------------------------------------------------------

def homepage(event: AddonEvent) -> c.Card:
    """The queue at a glance: what goes next, what is held and why, today's sends."""
    zone = event.zone
    now = utcnow()
    with ctx().db.read() as s:
        upcoming = correspondence.next_releases(s, g.team_id)
        stuck, held_count = correspondence.held(s, g.team_id)
        accounts = list(s.scalars(teams.usable_accounts(g.team_id, g.user_id)))
        standing = guard.sending_report(s, accounts, ctx().settings.daily_cap, now)
        next_rows = [(m.id, m.to_addr, _subject(m), m.release_at) for m in upcoming]
        held_rows = [(m.id, m.to_addr, _subject(m), m.error or m.hold_kind or "held")
                     for m in stuck]
    going = [c.Text(subject, top=to, bottom=f"goes {when(at, zone)}",
                    button=c.Button("Cancel", act("cancel", id=mid, back=HOME)))
             for mid, to, subject, at in next_rows] or [c.Paragraph("Nothing scheduled.")]
    waiting: list[c.Widget] = []
    for mid, to, subject, why in held_rows:
        waiting += [c.Text(subject, top=to, bottom=f"Held: {why}"),
                    c.Buttons((c.Button("Send now", act("send_now", id=mid, back=HOME)),
                               c.Button("Cancel", act("cancel", id=mid, back=HOME))))]
    sends = [c.Text(f"{a['sent_24h']:,} of {a['daily_cap']:,} in the last 24 hours",
                    top=a["email"], bottom=("Paused: " + a["paused_reason"])
                    if a["paused_reason"] else None)
             for a in standing["accounts"]] or [c.Paragraph("No Gmail account connected.")]
    return c.Card("mailrelease", (
        c.Section(tuple(going), header="Next releases", collapsible=True),
        c.Section(tuple(waiting) or (c.Paragraph("Nothing is held."),),
                  header=f"Held ({held_count})" if held_count else "Held",
                  collapsible=True),
        c.Section(tuple(sends), header="Today's sends"),
        c.Section((c.Buttons((_web("/", "Open the queue"), _web("/compose", "Compose"),
                              _web("/dashboard", "Dashboard"))),)),
    ), subtitle=f"as of {when(now, zone)}", name=HOME)


# -- an open message --------------------------------------------------------------------

def _mailbox_account(session) -> GmailAccount | None:
    """The connected account of the mailbox the add-on runs in (the user's address)."""
    for account in session.scalars(teams.usable_accounts(g.team_id, g.user_id)):
        if account.email.lower() == g.email:
            return account
    return None


def _open_message(event: AddonEvent) -> dict:
    """From, To, Subject of the message open in Gmail, read with the add-on's
    per-message access (the user's add-on token and Gmail's message token)."""
    gmail = event.gmail
    auth = event.authorizationEventObject
    if not (gmail.messageId and gmail.accessToken and auth.userOAuthToken):
        raise InvalidInput("Gmail did not give the add-on access to this message",
                           field="gmail.accessToken")
    service = ctx().gmail.for_addon(auth.userOAuthToken)
    try:
        found = service.current_message(gmail.messageId, gmail.accessToken, "metadata")
    except GmailError as exc:
        raise InvalidInput(f"Gmail would not show the message: {exc}",
                           field="gmail.messageId") from None
    return {h["name"].lower(): h["value"]
            for h in (found.get("payload") or {}).get("headers") or ()}


def _other_party(headers: dict, own: set[str]) -> tuple[str, str]:
    """(address, name) of the person on the other side of the open message."""
    sender_name, sender = parseaddr(headers.get("from", ""))
    if sender and sender.lower() not in own:
        return sender.lower(), sender_name
    for name, address in getaddresses([headers.get("to", ""), headers.get("cc", "")]):
        if address and address.lower() not in own:
            return address.lower(), name
    return (sender or "").lower(), sender_name


def message_card(event: AddonEvent) -> c.Card:
    """Beside an open message: the other party as a contact, what we sent them and what
    happened, what is still to go in this thread (with stop), and the actions."""
    zone = event.zone
    headers = _open_message(event)
    thread_id = event.gmail.threadId or ""
    with ctx().db.read() as s:
        account = _mailbox_account(s)
        own = own_addresses(account) if account is not None else {g.email}
        address, shown_name = _other_party(headers, own)
        contact = contacts.find_contact(s, g.team_id, address) if address else None
        state = subscription_of(s, g.team_id, address) if address else None
        sent = correspondence.sent_to(s, g.team_id, address) if address else []
        pending = [(m.id, _subject(m), m.release_at, m.status, m.follow_unless)
                   for m in correspondence.pending_in_thread(s, g.team_id, thread_id)] \
            if thread_id else []
    name = (contact.name if contact else None) or shown_name or address
    about: list[c.Widget] = [c.Text(address or "unknown", top="Address")]
    if contact is not None and contact.timezone:
        now_there = utcnow().astimezone(zone_or_utc(contact.timezone))
        about.append(c.Text(contact.timezone, top="Time zone",
                            bottom=f"their time now: {now_there.strftime('%H:%M')}"))
    for key, value in list((contact.attributes or {}).items())[:10] if contact else ():
        about.append(c.Text(str(value), top=str(key)))
    subscribed = state is None or state[0] == "subscribed"
    about.append(c.Text("subscribed" if subscribed else f"{state[0]}" + (
        f" ({state[1]})" if state and state[1] else ""), top="Subscription"))
    if contact is None:
        about.append(c.Paragraph("Not a contact yet: adding them to a list or campaign "
                                 "makes one."))
    history: list[c.Widget] = []
    for item in sent:
        what = ", ".join(item["outcomes"]) or "no response seen"
        history.append(c.Text(item["subject"], top=f"{item['status']} "
                              f"{when(item['at'], zone)}", bottom=what))
    queued: list[c.Widget] = []
    for mid, subject, at, status, unless in pending:
        note = " (unless they reply)" if unless else ""
        queued.append(c.Text(subject, top=f"{status}: {when(at, zone)}{note}",
                             button=c.Button("Stop", act("cancel", id=mid, back="message"))))
    if len(pending) > 1:
        queued.append(c.Buttons((c.Button("Stop all in this thread",
                                          act("stop_thread", thread=thread_id)),)))
    actions = [c.Button("Reply later", act("reply_later_form", thread=thread_id)),
               c.Button("Follow up if no reply", act("follow_up_form", thread=thread_id)),
               c.Button("Add to a campaign or list", act("add_form", address=address))]
    if subscribed and address:
        actions.append(c.Button("Unsubscribe this contact", act("unsubscribe",
                                                                address=address)))
    return c.Card(name, (
        c.Section(tuple(about), header="Contact", collapsible=True),
        c.Section(tuple(history) or (c.Paragraph("Nothing sent to them through "
                                                 "mailrelease yet."),),
                  header="What we sent them", collapsible=True),
        c.Section(tuple(queued) or (c.Paragraph("Nothing is waiting to go in this "
                                                "thread."),), header="Pending in this thread"),
        c.Section((c.Buttons(tuple(actions[:2])), c.Buttons(tuple(actions[2:]))),
                  header="Actions"),
    ), subtitle=headers.get("subject") or None, name="message")


def _back(event: AddonEvent) -> c.Card:
    """The card an action started from, drawn again with what changed."""
    return message_card(event) if event.parameter("back") == "message" else homepage(event)


# -- timing inputs ----------------------------------------------------------------------

def _default_time(zone: dt.tzinfo, days: int = 1, hour: int = 9) -> int:
    """Milliseconds since the epoch of `hour`:00 in `zone`, `days` from today."""
    local = dt.datetime.now(zone).replace(hour=hour, minute=0, second=0, microsecond=0)
    return int((local + dt.timedelta(days=days)).timestamp() * 1000)


TIMINGS = (("at this time in my zone", "mine"), ("at this time in their zone", "theirs"),
           ("now", "now"), ("at their best hour", "best"))


def _timing(event: AddonEvent, zone: dt.tzinfo) -> dict:
    """The Timing fields the form chose: a time in my zone, the same wall-clock time in
    the recipient's zone (local_time), now, or their best hour."""
    how = event.text("how") or "mine"
    if how == "now":
        return {}
    if how == "best":
        return {"best_hour": True}
    moment = event.moment("when")
    if moment is None:
        raise InvalidInput("choose when", field="when")
    if how == "theirs":
        wall = moment.astimezone(zone)
        return {"local_time": make(LocalTime, time=wall.strftime("%H:%M"),
                                   date=wall.date().isoformat())}
    if moment <= utcnow():
        raise InvalidInput(f"{when(moment, zone)} has passed: choose a later time",
                           field="when")
    return {"send_at": moment}


def _timing_widgets(zone: dt.tzinfo, with_now: bool = True) -> tuple[c.Widget, ...]:
    offset = int((dt.datetime.now(zone).utcoffset() or dt.timedelta()).total_seconds() / 60)
    choices = TIMINGS if with_now else TIMINGS[:2]
    return (c.DateTime("when", "When", _default_time(zone), offset),
            c.Choice("how", "Send", tuple(choices), "mine"))


def _templates(kind: str | None = None) -> list[tuple[str, str]]:
    with ctx().db.read() as s:
        return [(t.name, str(t.id)) for t in templates.list_templates(s, g.team_id, kind)]


def _need_template(items: list, kind: str) -> None:
    if not items:
        raise InvalidInput(f"make a {kind} in mailrelease first (Templates)",
                           field="template_id")


# -- actions ----------------------------------------------------------------------------

def action(name: str, event: AddonEvent) -> dict:
    """Run the card action `name`: its answer, or a notification saying why not."""
    handler = ACTIONS.get(name)
    if handler is None:
        return c.navigate(notify="This button is from an older version: open the add-on "
                                 "again.")
    try:
        if name not in READ_ONLY:
            teams.require(g.role, ("owner", "member"), "act from the add-on")
        return handler(event)
    except DomainError as exc:
        return c.navigate(notify=exc.message)


def _home(event: AddonEvent) -> dict:
    return c.navigate(update=homepage(event))


def _cancel(event: AddonEvent) -> dict:
    mid = event.parameter("id") or ""
    cx = ctx()
    cancelling.cancel(cx.db, cx.gmail, actor(), mid, utcnow())
    return c.navigate(update=_back(event), notify="Cancelled.")


def _send_now(event: AddonEvent) -> dict:
    mid = event.parameter("id") or ""
    cx = ctx()
    with cx.db.read() as s:
        messages.check_send_now(s, g.team_id, mid)
    with cx.db.write() as s:
        messages.send_now(s, actor(), mid, utcnow())
    cx.wake_worker()
    return c.navigate(update=_back(event), notify="Sending now.")


def _stop_thread(event: AddonEvent) -> dict:
    thread_id = event.parameter("thread") or ""
    cx = ctx()
    with cx.db.read() as s:
        ids = [m.id for m in correspondence.pending_in_thread(s, g.team_id, thread_id)]
    stopped = 0
    for mid in ids:
        try:
            cancelling.cancel(cx.db, cx.gmail, actor(), mid, utcnow())
            stopped += 1
        except Conflict:
            pass  # it started sending meanwhile: it is no longer pending
    return c.navigate(update=message_card(event),
                      notify=f"Stopped {stopped} message{'s' if stopped != 1 else ''}.")


def _unsubscribe(event: AddonEvent) -> dict:
    address = (event.parameter("address") or "").lower()
    if not address:
        raise InvalidInput("no address to unsubscribe", field="address")
    with ctx().db.write() as s:
        if suppress(s, g.team_id, address, "unsubscribed",
                    f"unsubscribed from the Gmail add-on by {g.email}", utcnow()):
            UNSUBSCRIBES.labels("add-on").inc()
    return c.navigate(update=message_card(event),
                      notify=f"{address} is unsubscribed: nothing more goes to them.")


def _reply_later_form(event: AddonEvent) -> dict:
    replies = _templates("reply") + _templates("email")
    _need_template(replies, "saved reply")
    return c.navigate(push=c.Card("Reply later", (c.Section((
        c.Choice("template_id", "Saved reply", tuple(replies), replies[0][1]),
        *_timing_widgets(event.zone),
        c.Buttons((c.Button("Schedule the reply", act(
            "reply_later", thread=event.parameter("thread")), filled=True),)),
    )),), subtitle="A saved reply, personalized, in this thread"))


def _reply_later(event: AddonEvent) -> dict:
    out = _queue_reply(event, unless_reply=False, timing=_timing(event, event.zone))
    return c.navigate(pop=True, update=message_card(event),
                      notify=f"Reply scheduled: {when(_at(out), event.zone)}.")


def _at(out: dict) -> dt.datetime | None:
    return dt.datetime.fromisoformat(out["release_at"]) if out.get("release_at") else None


def _queue_reply(event: AddonEvent, unless_reply: bool, timing: dict) -> dict:
    template_id = event.text("template_id")
    if not template_id.isdigit():
        raise InvalidInput("choose a saved reply", field="template_id")
    with ctx().db.read() as s:
        account = _mailbox_account(s)
    if account is None:
        raise InvalidInput(f"{g.email} is not connected to mailrelease for this team: "
                           "sign in with it to send from it", field="account_id")
    command = make(ThreadReply, template_id=int(template_id), account_id=account.id,
                   **timing)
    return gmail_threads.reply(g.team_id, g.user_id, account.id,
                               event.parameter("thread") or "", command,
                               unless_reply=unless_reply)


def _follow_up_form(event: AddonEvent) -> dict:
    items = _templates("reply") + _templates("email")
    _need_template(items, "template")
    return c.navigate(push=c.Card("Follow up if no reply", (c.Section((
        c.TextInput("days", "After how many days", "3", hint=f"1 to {MAX_DAYS}"),
        c.Choice("template_id", "With", tuple(items), items[0][1]),
        c.Paragraph("It goes into this thread unless someone answers in it first (the "
                    "thread is read again just before sending)."),
        c.Buttons((c.Button("Schedule the follow-up", act(
            "follow_up", thread=event.parameter("thread")), filled=True),)),
    )),)))


def _follow_up(event: AddonEvent) -> dict:
    days = event.text("days")
    if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
        raise InvalidInput(f"days must be a whole number from 1 to {MAX_DAYS}", field="days")
    out = _queue_reply(event, unless_reply=True,
                       timing={"delay_seconds": int(days) * 86_400})
    return c.navigate(pop=True, update=message_card(event),
                      notify=f"Follow-up scheduled for {when(_at(out), event.zone)}, unless "
                             f"they reply.")


def _add_form(event: AddonEvent) -> dict:
    address = event.parameter("address") or ""
    with ctx().db.read() as s:
        running = [(f"{x.name} ({x.created_at:%d %b})", str(x.id)) for x in s.scalars(
            select(Campaign).where(Campaign.team_id == g.team_id, Campaign.status == "done")
            .order_by(Campaign.created_at.desc()).limit(20))]
    widgets: list[c.Widget] = [c.Paragraph(f"Add {address} to:")]
    if running:
        widgets += [c.Choice("campaign_id", "A campaign (they get its mail now, as its "
                                            "other recipients did)", tuple(running),
                             running[0][1]),
                    c.Buttons((c.Button("Add to the campaign",
                                        act("add_to_campaign", address=address)),))]
    widgets += [c.Divider(),
                c.TextInput("attribute", "A list (a contact attribute)", "list"),
                c.TextInput("value", "named", hint="e.g. customers"),
                c.Buttons((c.Button("Add to the list", act("add_to_list", address=address)),))]
    return c.navigate(push=c.Card("Add to a campaign or list", (c.Section(tuple(widgets)),)))


def _add_to_list(event: AddonEvent) -> dict:
    address = event.parameter("address") or ""
    attribute, value = event.text("attribute") or "list", event.text("value")
    if not value:
        raise InvalidInput("name the list", field="value")
    with ctx().db.write() as s:
        contacts.add_contacts(s, g.team_id, [make(NewContact, email=address,
                                                  attributes={attribute: value})],
                              utcnow(), actor())
    return c.navigate(pop=True, update=message_card(event),
                      notify=f"Added to the list {attribute} = {value}.")


def _add_to_campaign(event: AddonEvent) -> dict:
    address = event.parameter("address") or ""
    campaign_id = event.text("campaign_id")
    now = utcnow()
    cx = ctx()
    with cx.db.write() as s:  # the contact first, so that the campaign can name it
        contact = contacts.ensure_contact(s, g.team_id, address, now)
        contact_id = contact.id
    with cx.db.read() as s:
        contact = contacts.get_contact(s, g.team_id, contact_id)
        campaign, rows, evts = campaigns.prepare_addition(s, g.team_id, campaign_id,
                                                          contact, now)
    with cx.db.write() as s:
        queued = campaigns.store_addition(s, actor(), campaign, rows, evts)
    cx.wake_worker()
    return c.navigate(pop=True, update=message_card(event),
                      notify=f"Added to {campaign.name}: {queued} message"
                             f"{'s' if queued != 1 else ''} queued.")


# -- compose ----------------------------------------------------------------------------

def _recipients(event: AddonEvent) -> list[str]:
    return [a for _, a in getaddresses(event.gmail.toRecipients) if a][:50]


def compose_card(event: AddonEvent) -> c.Card:
    """In a draft: insert a template personalized for its recipient, or schedule instead."""
    items = _templates("email") + _templates("reply")
    to = _recipients(event)
    widgets: list[c.Widget] = []
    if items:
        widgets += [c.Choice("template_id", "Template or saved reply", tuple(items),
                             items[0][1]),
                    c.Buttons((c.Button("Insert into the draft", act("insert"),
                                        filled=True),))]
    else:
        widgets.append(c.Paragraph("No templates yet: make one in mailrelease."))
    shown = ", ".join(to) if to else "add a recipient to personalize for them"
    return c.Card("mailrelease", (
        c.Section(tuple(widgets), header=f"For {shown}"),
        c.Section((c.Paragraph("Gmail does not hand an add-on the draft's text: to send it "
                               "later from mailrelease, write it (or pick a template) here."),
                   c.Buttons((c.Button("Schedule instead", act("schedule_form")),))),
                  header="Send later"),
    ), name="compose")


def _insert(event: AddonEvent) -> dict:
    template_id = event.text("template_id")
    to = _recipients(event)
    with ctx().db.read() as s:
        template = templates.get_template(s, g.team_id, template_id)
        data: dict = {}
        if to:
            data = contacts.contact_data(contacts.find_contact(s, g.team_id, to[0]),
                                         to[0].lower())
        body = templates.for_draft(template, data)
    return c.insert_into_draft(body)


def _schedule_form(event: AddonEvent) -> dict:
    items = [("write it below", "")] + _templates("email")
    return c.navigate(push=c.Card("Schedule a message", (c.Section((
        c.TextInput("to", "To", ", ".join(_recipients(event))),
        c.Choice("template_id", "Template", tuple(items), ""),
        c.TextInput("subject", "Subject"),
        c.TextInput("body", "Message", multiline=True),
        *_timing_widgets(event.zone),
        c.Buttons((c.Button("Queue it", act("schedule"), filled=True),)),
    )),)))


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
                   for p in text.replace("\r\n", "\n").split("\n\n") if p.strip())


def _schedule(event: AddonEvent) -> dict:
    addresses = [a for _, a in getaddresses([event.text("to")]) if a]
    if not addresses:
        raise InvalidInput("who is it to?", field="to")
    template_id = event.text("template_id")
    content: dict
    if template_id:
        content = {"template_id": int(template_id)} if template_id.isdigit() else {}
    else:
        subject, body = event.text("subject"), event.text("body")
        if not subject or not body:
            raise InvalidInput("write a subject and a message, or pick a template",
                               field="subject" if not subject else "body")
        content = {"subject": subject, "html": _paragraphs(body)}
    timing = _timing(event, event.zone)
    cx = ctx()
    queued = []
    for address in addresses:
        command = make(NewMessage, to=address, **content, **timing)
        with cx.db.read() as s:
            prepared = messages.prepare_message(s, team_id=g.team_id, user_id=g.user_id,
                                                command=command, now=utcnow(),
                                                allowed_hosts=cx.settings.content_hosts)
        with cx.db.write() as s:
            stored = messages.store_message(s, prepared, actor())
            queued.append((stored.status, stored.release_at, stored.error))
    cx.wake_worker()
    status, at, why = queued[0]
    said = (f"Held: {why}" if status == "held" else f"Queued for {when(at, event.zone)}")
    more = f" ({len(queued)} messages)" if len(queued) > 1 else ""
    return c.navigate(pop=True, notify=said + more)


ACTIONS = {"home": _home, "cancel": _cancel, "send_now": _send_now,
           "stop_thread": _stop_thread, "unsubscribe": _unsubscribe,
           "reply_later_form": _reply_later_form, "reply_later": _reply_later,
           "follow_up_form": _follow_up_form, "follow_up": _follow_up,
           "add_form": _add_form, "add_to_list": _add_to_list,
           "add_to_campaign": _add_to_campaign, "insert": _insert,
           "schedule_form": _schedule_form, "schedule": _schedule}
# Actions that only show something (viewers may use them).
READ_ONLY = {"home", "reply_later_form", "follow_up_form", "add_form", "schedule_form",
             "insert"}
