"""Events from the user's systems (webhooks) and the rules they trigger.

POST /events is idempotent on the sender's `id`: the first answer is stored and a repeat
gets it back without queueing anything. Signed webhooks use the team's secret: header
`X-Mailrelease-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler.audience import contacts
from scheduler.audience.conditions import matches
from scheduler.commands import NewEvent, NewMessage, NewRule, NewTemplate, Origin
from scheduler.content import templates
from scheduler.delivery.statistics import ENGAGEMENT_COUNTS, engagement_counts
from scheduler.engine import messages
from scheduler.errors import Conflict, DomainError, InvalidInput, NotFound
from scheduler.store import audit, lookup, queue
from scheduler.store.audit import Actor
from scheduler.store.crypto import TokenCipher
from scheduler.store.db import Database, rowcount
from scheduler.store.models import Contact, Event, Message, Rule, Team, Template
from scheduler.timing.release_at import Recipient, plan
from scheduler.typed import make

log = logging.getLogger("mailrelease.events")
SIGNATURE_MAX_AGE = 300
ROTATION_GRACE = dt.timedelta(hours=24)
MAX_EVENT_BYTES = 64 * 1024
MAX_ID_CHARS = 200
MAX_CAP_SECONDS = 366 * 86400
OPERATORS = ("equals", "not_equals", "greater", "less", "contains", "exists")
OPEN = queue.OPEN_STATUSES

class Unauthorized(DomainError):
    """A missing, forged or stale signature (401)."""

    status = 401
    code = "unauthorized"


# -- the webhook secret ------------------------------------------------------------------

def webhook_secrets(session: Session, cipher: TokenCipher, team_id: int,
                    now: dt.datetime) -> tuple[str, str | None, dt.datetime | None]:
    """(current secret, previous secret still accepted or None, until when); made on first use."""
    team = session.get_one(Team, team_id)
    if team.webhook_secret is None:
        team.webhook_secret = cipher.encrypt({"secret": "whsec_" + secrets.token_hex(24)})
        session.flush()
    current = cipher.decrypt(team.webhook_secret)["secret"]
    previous, until = None, None
    if team.webhook_secret_previous is not None and team.webhook_rotated_at is not None:
        until = team.webhook_rotated_at + ROTATION_GRACE
        if until > now:
            previous = cipher.decrypt(team.webhook_secret_previous)["secret"]
    return current, previous, until if previous else None


def rotate_secret(session: Session, cipher: TokenCipher, actor: Actor, now: dt.datetime) -> None:
    """A new secret; the old one stays valid for ROTATION_GRACE so senders can switch."""
    team_id = actor.team_id
    webhook_secrets(session, cipher, team_id, now)
    team = session.get_one(Team, team_id)
    team.webhook_secret_previous = team.webhook_secret
    team.webhook_secret = cipher.encrypt({"secret": "whsec_" + secrets.token_hex(24)})
    team.webhook_rotated_at = now
    audit.record(session, actor, "rotated the webhook secret", f"team {team_id}", None, now)


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    """The header value a sender computes (also used by tests and the docs)."""
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(header: str, body: bytes, valid_secrets: list[str], now: float) -> None:
    """Unauthorized unless one v1 signature matches a valid secret within 300 s."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        t = int(fields.get("t", [""])[0])
    except ValueError:
        raise Unauthorized("the signature header has no valid t=") from None
    if abs(now - t) > SIGNATURE_MAX_AGE:
        raise Unauthorized(f"the signature is older than {SIGNATURE_MAX_AGE} s (or from the "
                           f"future): sign each request when you send it")
    signed = f"{t}.".encode() + body
    for secret in valid_secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, given) for given in fields.get("v1", [])):
            return
    raise Unauthorized("the signature does not match this team's webhook secret")


# -- rules -------------------------------------------------------------------------------

def create_rule(session: Session, team_id: int, command: NewRule, now: dt.datetime,
                actor: Actor | None = None) -> Rule:
    """Check and store a rule: event, conditions, template_id, delay_seconds, cancel_on,
    frequency_cap {"max", "seconds"}, timing and data."""
    template = templates.get_template(session, team_id, command.template_id)
    timing = command.model_dump(mode="json", include={"local_time", "best_hour", "window"},
                                exclude_none=True)
    delay = command.delay_seconds
    if timing:
        if delay and set(timing) - {"window"}:
            raise InvalidInput("give delay_seconds or local_time/best_hour, not both",
                               field="delay_seconds")
        # Checked as a message would be, for a recipient in UTC.
        plan({**timing, **({"delay_seconds": delay} if delay else {})}, now,
             Recipient("UTC"))
    cap = command.frequency_cap
    rule = Rule(team_id=team_id, name=command.name or command.event.strip()[:200],
                timing=timing or None, data=command.data,
                event=command.event.strip(),
                conditions=[c.model_dump() for c in command.conditions],
                template_id=template.id, delay_seconds=float(delay),
                cancel_on=[x.strip() for x in command.cancel_on],
                frequency_cap=cap.model_dump() if cap else None,
                active=command.active, created_at=now)
    session.add(rule)
    session.flush()
    audit.record(session, actor, "created a rule", f"rule {rule.id}", {"event": rule.event},
                 now)
    return rule


def delete_rule(session: Session, actor: Actor, rule_id, now: dt.datetime) -> None:
    """Delete a rule; what it queued stays queued."""
    rule = get_rule(session, actor.team_id, rule_id)
    session.delete(rule)
    audit.record(session, actor, "deleted a rule", f"rule {rule.id}", {"event": rule.event},
                 now)


def rule_stats(session: Session, rule_ids: list[int]) -> dict[int, dict]:
    """Per rule: messages queued, sent, people who opened, clicked, replied; bounces and
    unsubscribes; rates over sent messages (machine opens and clicks are left out)."""
    counts = (engagement_counts(session, Message.rule_id,
                                         Message.rule_id.in_(rule_ids)) if rule_ids else {})
    stats = {}
    for rid in rule_ids:
        entry = dict(counts.get(rid) or dict.fromkeys(ENGAGEMENT_COUNTS, 0))
        sent = entry["sent"]
        entry["rates"] = {k: round(entry[k] / sent, 4) if sent else None
                          for k in ("opened", "clicked", "replied", "bounced", "unsubscribed")}
        stats[rid] = entry
    return stats


def rule_as_dict(rule: Rule, stats: dict | None = None) -> dict:
    """The API representation (with its counts and rates when given)."""
    return {"stats": stats, "id": rule.id, "name": rule.name, "event": rule.event,
            "conditions": rule.conditions, "template_id": rule.template_id,
            "delay_seconds": rule.delay_seconds, "timing": rule.timing, "data": rule.data,
            "cancel_on": rule.cancel_on,
            "frequency_cap": rule.frequency_cap, "active": rule.active,
            "created_at": rule.created_at.isoformat()}


# -- receiving an event ------------------------------------------------------------------

def event_fields(command: NewEvent) -> dict:
    """What `receive` reads of an event."""
    return {"id": command.id.strip(), "name": command.name.strip(), "email": command.email,
            "data": command.data or {}, "occurred_at": command.occurred_at}


@dataclass(frozen=True)
class PlannedEvent:
    """What an event's rules would queue, rendered before the write transaction."""

    event: dict
    answered: dict | None = None  # the id was seen: its first answer
    messages: tuple = ()  # (rule id, PreparedMessage), in rule order
    problem: str | None = None  # an accepted event's rules could not run: why


def plan_event(session: Session, team_id: int, user_id: int | None, event: dict,
               now: dt.datetime, pending: bool = False) -> PlannedEvent:
    """Match the event's rules and render what they queue, reading only (`pending`: an
    accepted event, stored already)."""
    earlier = None if pending else _answered(session, team_id, event["id"])
    if earlier is not None:
        return PlannedEvent(event, earlier)
    # A new address is a contact with nothing but its address: what its templates see is
    # the same before and after `store_event` creates it.
    contact = contacts.find_contact(session, team_id, event["email"]) or Contact(
        email=event["email"], attributes={}, subscription="subscribed")
    planned = []
    rules = session.scalars(select(Rule).where(Rule.team_id == team_id, Rule.active,
                                               Rule.event == event["name"])
                            .order_by(Rule.id)).all()
    for rule in rules:
        if not matches(rule.conditions or [], event["data"], contact):
            continue
        if contact.id is not None and _capped(session, rule.id, rule.frequency_cap,
                                              contact.id, now):
            continue
        timing = dict(rule.timing or {})
        if rule.delay_seconds or not set(timing) - {"window"}:
            timing["delay_seconds"] = rule.delay_seconds
        command = make(NewMessage, **{
            "to": contact.email, "template_id": rule.template_id,
            "data": {**(rule.data or {}), **event["data"],
                     "event": {"name": event["name"], "id": event["id"]}},
            **timing})
        planned.append((rule.id, rule.frequency_cap, messages.prepare_message(
            session, team_id=team_id, user_id=user_id, command=command, now=now,
            origin=Origin(kind="rule", rule_id=rule.id))))
    return PlannedEvent(event, None, tuple(planned))


def store_event(session: Session, team_id: int, planned: PlannedEvent,
                now: dt.datetime) -> tuple[dict, bool]:
    """Record the event, cancel what it cancels, queue what its rules queue (no render
    here). Returns (the answer, whether it is new). A repeated id returns the first
    answer."""
    event = planned.event
    earlier = planned.answered or _answered(session, team_id, event["id"])
    if earlier is not None:
        return earlier, False
    row = Event(team_id=team_id, external_id=event["id"], name=event["name"],
                email=event["email"], data=event["data"],
                occurred_at=event["occurred_at"] or now, received_at=now)
    try:
        with session.begin_nested():  # a failed insert leaves the transaction usable
            session.add(row)
            session.flush()
    except IntegrityError:
        # The same id at the same moment (PostgreSQL): our insert waited for the other
        # request's transaction; once it committed, its answer is the answer.
        earlier = _answered(session, team_id, event["id"])
        if earlier is not None:
            return earlier, False
        raise Conflict("this event id is being processed by another request; send it "
                       "again in a moment to get its answer", field="id",
                       retry_after=1) from None
    return _run_rules(session, team_id, row.id, planned, now, row.received_at), True


def _run_rules(session: Session, team_id: int, row_id: int, planned: PlannedEvent,
               now: dt.datetime, received_at: dt.datetime) -> dict:
    """Cancel what the event cancels and queue what its rules queue; its answer, stored
    on its row (in the caller's transaction)."""
    event = planned.event
    contact = contacts.ensure_contact(session, team_id, event["email"], now)
    cancelled = _cancel(session, team_id, event["name"], contact, now, row_id)
    queued = []
    for rule_id, cap, prepared in planned.messages:
        if _capped(session, rule_id, cap, contact.id, now):  # again, now it is exact
            continue
        message = messages.store_message(session, messages.PreparedMessage(
            {**prepared.values, "contact_id": contact.id, "event_id": row_id,
             "event_at": received_at, "origin_key": f"rule:{rule_id}:event:{row_id}"},
            prepared.detail))
        queued.append(message.id)
    answer = {"event_id": row_id, "messages": queued, "cancelled": cancelled}
    session.execute(update(Event).where(Event.id == row_id)
                    .values(response=answer, status=DONE, claimed_until=None))
    return answer


# -- accepted now, processed later (Prefer: respond-async) --------------------------------

PENDING, DONE = "pending", "done"
# Whoever claims a pending event runs its rules within this, or another may.
CLAIM_SECONDS = 60


def accepted(row: Event) -> dict:
    """What a caller is told of an event: its answer once its rules ran, else that it is
    pending."""
    if row.status == DONE and row.response is not None:
        return {**row.response, "status": DONE}
    return {"event_id": row.id, "status": PENDING, "messages": [], "cancelled": []}


def accept_event(session: Session, team_id: int, user_id: int | None, event: dict,
                 now: dt.datetime) -> tuple[Event, bool]:
    """Store an event to run its rules later (one INSERT; its id seen before: that row).
    Returns (the row, whether it is new)."""
    found = session.scalar(select(Event).where(Event.team_id == team_id,
                                               Event.external_id == event["id"]))
    if found is not None:
        return found, False
    row = Event(team_id=team_id, external_id=event["id"], name=event["name"],
                email=event["email"], data=event["data"], user_id=user_id,
                occurred_at=event["occurred_at"] or now, received_at=now, status=PENDING)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same id at the same moment: the other one is the row
        found = session.scalar(select(Event).where(Event.team_id == team_id,
                                                   Event.external_id == event["id"]))
        if found is None:
            raise
        return found, False
    return row, True


def claim_pending(session: Session, now: dt.datetime, limit: int = 100,
                  ids: list[int] | None = None) -> list[int]:
    """Take up to `limit` pending events nobody holds (or whose holder's claim ran out),
    for CLAIM_SECONDS: one conditional UPDATE, so each is run by one process at a time."""
    free = select(Event.id).where(Event.status == PENDING, or_(
        Event.claimed_until.is_(None), Event.claimed_until < now))
    if ids is not None:
        free = free.where(Event.id.in_(ids))
    free = free.order_by(Event.id).limit(limit).with_for_update(skip_locked=True)
    return list(session.scalars(
        update(Event).where(Event.id.in_(free.scalar_subquery()))
        .values(claimed_until=now + dt.timedelta(seconds=CLAIM_SECONDS))
        .returning(Event.id).execution_options(synchronize_session=False)))


def plan_pending(session: Session, event_id: int, now: dt.datetime) -> PlannedEvent | None:
    """A claimed event's rules, matched and rendered, reading only (None: done already)."""
    row = session.get(Event, event_id)
    if row is None or row.status != PENDING:
        return None
    event = {"id": row.external_id, "name": row.name, "email": row.email,
             "data": row.data or {}, "occurred_at": row.occurred_at}
    try:
        return plan_event(session, row.team_id, row.user_id, event, now, pending=True)
    except DomainError as exc:
        # What a synchronous request would have been refused with (its template gone,
        # say): the event ends with that, visible at GET /events/{id}.
        return PlannedEvent(event, problem=exc.message)


def finish_pending(session: Session, event_id: int, planned: PlannedEvent,
                   now: dt.datetime) -> dict | None:
    """Run a planned pending event's rules (write transaction); None when another
    process finished it meanwhile (then nothing is queued twice: this UPDATE is the
    one that may move it to done)."""
    row = session.get(Event, event_id)
    if row is None:
        return None
    done = rowcount(session.execute(update(Event).where(
        Event.id == event_id, Event.status == PENDING).values(status=DONE)))
    if not done:
        return None
    if planned.problem:
        answer = {"event_id": event_id, "messages": [], "cancelled": [],
                  "error": planned.problem}
        session.execute(update(Event).where(Event.id == event_id)
                        .values(response=answer, claimed_until=None))
        return answer
    return _run_rules(session, row.team_id, event_id, planned, now, row.received_at)


def _answered(session: Session, team_id: int, external_id: str) -> dict | None:
    """The answer an event id already got (a committed event has one once its rules ran;
    one accepted and still pending is a 409 to a synchronous request: ask again)."""
    found = session.execute(select(Event.response, Event.status).where(
        Event.team_id == team_id, Event.external_id == external_id)).first()
    if found is not None and found.status == PENDING:
        raise Conflict("this event id was accepted and is still being processed: "
                       "GET /api/v1/events/{event_id} shows its outcome", field="id",
                       retry_after=1)
    return found.response if found is not None else None


def _cancel(session: Session, team_id: int, name: str, contact: Contact, now: dt.datetime,
            event_row_id: int) -> list[str]:
    rule_ids = [r.id for r in session.scalars(select(Rule).where(Rule.team_id == team_id))
                if name in (r.cancel_on or [])]
    if not rule_ids:
        return []
    ids = session.scalars(select(Message.id).where(
        Message.team_id == team_id, Message.rule_id.in_(rule_ids),
        Message.status.in_(OPEN), Message.contact_id == contact.id)).all()
    done = []
    for mid in ids:
        if queue.transition(session, mid, team_id, "cancel", now,
                            {"by": f"event:{name}", "event_id": event_row_id},
                            lease_until=None, hold_until=None):
            done.append(mid)
    return done


def _capped(session: Session, rule_id: int, cap: dict | None, contact_id: int,
            now: dt.datetime) -> bool:
    if not cap:
        return False
    since = now - dt.timedelta(seconds=cap["seconds"])
    count = session.scalar(select(func.count()).select_from(Message).where(
        and_(Message.rule_id == rule_id, Message.contact_id == contact_id,
             Message.created_at >= since, Message.status != "cancelled")))
    return count >= cap["max"]


def run_pending(db: Database, clock, ids: list[int] | None = None, limit: int = 100) -> int:
    """Claim pending events (those of `ids`, or up to `limit` that nobody holds) and run
    their rules: matched and rendered in a read transaction, stored in a write one. Returns
    how many this call finished. One that fails unexpectedly stays claimed until its claim
    runs out, then any process tries it again."""
    with db.write() as s:
        claimed = claim_pending(s, clock(), limit, ids)
    finished = 0
    for event_id in claimed:
        try:
            with db.read() as s:
                planned = plan_pending(s, event_id, clock())
            if planned is None:
                continue
            with db.write() as s:
                if finish_pending(s, event_id, planned, clock()) is not None:
                    finished += 1
        except Exception:  # noqa: BLE001 - the claim runs out and it is tried again
            log.exception("action=event_failed event_id=%s", event_id)
    return finished


class PendingRunner:
    """Runs accepted events' rules in a web process, right after their answers: one daemon
    thread that, when poked, claims and runs pending events until none is free. A process
    that stops leaves nothing half done: what it had claimed is run by anyone once the
    claim runs out (the workers sweep every few seconds)."""

    def __init__(self, db: Database, clock, after=None):
        self.db, self.clock, self.after = db, clock, after
        self._poked = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        """There are new pending events."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="mailrelease-events")
                self._thread.start()
        self._poked.set()

    def _loop(self) -> None:
        while True:
            self._poked.wait()
            self._poked.clear()
            try:
                while run_pending(self.db, self.clock, limit=50):
                    if self.after is not None:
                        self.after()
            except Exception:  # noqa: BLE001 - the next poke (or a worker) goes on
                log.exception("action=pending_events_failed")


def get_event(session: Session, team_id: int, event_id) -> Event:
    """The team's event by its event_id, or NotFound."""
    return lookup.team_row(session, Event, team_id, event_id, "event")


def get_rule(session: Session, team_id: int, rule_id) -> Rule:
    """The team's rule, or NotFound."""
    return lookup.team_row(session, Rule, team_id, rule_id, "rule")



def seed_rules(session: Session, team_id: int, user_id: int | None, key: str,
               allowed_hosts: tuple[str, ...], now: dt.datetime,
               actor: Actor | None = None) -> list[Rule]:
    """A ready-made set of rules (see templates/rules.json) with the starter templates they
    use, loaded into the team (templates it already has by name are reused)."""
    from scheduler.content import starters
    seeds = starters.rule_seeds()
    if key not in seeds:
        raise NotFound(f"no rule seed {key!r}; there are: {', '.join(seeds)}", field="seed")
    made = []
    for spec in seeds[key]["rules"]:
        starter = starters.starter(spec["starter"])
        template = session.scalar(select(Template).where(
            Template.team_id == team_id,
            Template.name == starter["name"]))
        if template is None:
            template = templates.create_template(
                session, team_id=team_id, user_id=user_id, allowed_hosts=allowed_hosts,
                now=now, origin=f"starter:{starter['key']}",
                command=make(NewTemplate, **starters.template_body(starter)))
            session.flush()
        body = {k: v for k, v in spec.items() if k != "starter"}
        rule = make(NewRule, **body, template_id=template.id)
        # Added twice, a set would send two of each: a rule it already made is kept.
        if session.scalar(select(Rule.id).where(
                Rule.team_id == team_id, Rule.event == rule.event,
                Rule.template_id == template.id,
                Rule.name == (rule.name or rule.event.strip()[:200]))) is not None:
            continue
        made.append(create_rule(session, team_id, rule, now))
    if made:
        audit.record(session, actor, "added a ready-made rule set", f"seed {key}",
                     {"rules": [r.id for r in made]}, now)
    return made
