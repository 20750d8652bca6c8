"""Events from the user's systems (webhooks) and the rules they trigger.

POST /events is idempotent on the sender's `id`: the first answer is stored and a repeat
gets it back without queueing anything. Signed webhooks use the team's secret: header
`X-Mailrelease-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler import contacts, lookup, messages, queue, templates, tracking
from scheduler.crypto import TokenCipher
from scheduler.errors import Conflict, DomainError, InvalidInput, NotFound
from scheduler.models import Contact, Event, Message, Rule, Team, Template
from scheduler.timing import Recipient, plan

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
    team = session.get(Team, team_id)
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


def rotate_secret(session: Session, cipher: TokenCipher, team_id: int, now: dt.datetime) -> None:
    """A new secret; the old one stays valid for ROTATION_GRACE so senders can switch."""
    webhook_secrets(session, cipher, team_id, now)
    team = session.get(Team, team_id)
    team.webhook_secret_previous = team.webhook_secret
    team.webhook_secret = cipher.encrypt({"secret": "whsec_" + secrets.token_hex(24)})
    team.webhook_rotated_at = now


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

def check_conditions(raw) -> list[dict]:
    """Validate rule or audience conditions (422 naming the offending one)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInput("conditions must be a list", field="conditions")
    out = []
    for i, c in enumerate(raw):
        where = f"conditions[{i}]"
        if not isinstance(c, dict):
            raise InvalidInput(f"{where} must be an object", field=where)
        field_name, op = c.get("field"), c.get("op")
        if not isinstance(field_name, str) or not field_name.startswith(("data.", "contact.")):
            raise InvalidInput(f"{where}.field must start with data. or contact.",
                               field=f"{where}.field")
        if op not in OPERATORS:
            raise InvalidInput(f"{where}.op must be one of {', '.join(OPERATORS)}",
                               field=f"{where}.op")
        if op != "exists" and "value" not in c:
            raise InvalidInput(f"{where}.value is required for {op}", field=f"{where}.value")
        out.append({"field": field_name, "op": op, "value": c.get("value")})
    return out


def _names(raw, field_name: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise InvalidInput(f"{field_name} must be a list of event names", field=field_name)
    return [x.strip() for x in raw]


def create_rule(session: Session, team_id: int, body: dict, now: dt.datetime) -> Rule:
    """Check and store a rule: event, conditions, template_id, delay_seconds, cancel_on,
    frequency_cap {"max", "seconds"}."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    unknown = set(body) - {"name", "event", "conditions", "template_id", "delay_seconds",
                           "cancel_on", "frequency_cap", "active", "local_time", "best_hour",
                           "window", "data"}
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]} is not a rule field", field=sorted(unknown)[0])
    event = body.get("event")
    if not isinstance(event, str) or not event.strip():
        raise InvalidInput("event is required (the event name that triggers the rule)",
                           field="event")
    template = templates.get_template(session, team_id, body.get("template_id"))
    delay = body.get("delay_seconds", 0)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not (
            0 <= delay <= 366 * 86400):
        raise InvalidInput("delay_seconds must be a number of seconds up to a year",
                           field="delay_seconds")
    cap = body.get("frequency_cap")
    if cap is not None:
        if not (isinstance(cap, dict) and isinstance(cap.get("max"), int)
                and not isinstance(cap["max"], bool) and 1 <= cap["max"] <= 10_000
                and isinstance(cap.get("seconds"), (int, float))
                and not isinstance(cap["seconds"], bool)
                and 0 < cap["seconds"] <= MAX_CAP_SECONDS):
            raise InvalidInput(f'frequency_cap must be {{"max": 1 to 10000, "seconds": 1 '
                               f'to {MAX_CAP_SECONDS} (a year)}}', field="frequency_cap")
        cap = {"max": cap["max"], "seconds": cap["seconds"]}
    timing = {k: body[k] for k in ("local_time", "best_hour", "window")
              if body.get(k) not in (None, False)}
    if timing:
        if delay and set(timing) - {"window"}:
            raise InvalidInput("give delay_seconds or local_time/best_hour, not both",
                               field="delay_seconds")
        # Checked as a message would be, for a recipient in UTC.
        plan({**timing, **({"delay_seconds": delay} if delay else {})}, now,
             Recipient("UTC"))
    data = body.get("data")
    if data is not None and not isinstance(data, dict):
        raise InvalidInput("data must be an object", field="data")
    rule = Rule(team_id=team_id, name=str(body.get("name") or event)[:200],
                timing=timing or None, data=data,
                event=event.strip(), conditions=check_conditions(body.get("conditions")),
                template_id=template.id, delay_seconds=float(delay),
                cancel_on=_names(body.get("cancel_on"), "cancel_on"), frequency_cap=cap,
                active=bool(body.get("active", True)), created_at=now)
    session.add(rule)
    session.flush()
    return rule


def rule_stats(session: Session, rule_ids: list[int]) -> dict[int, dict]:
    """Per rule: messages queued, sent, people who opened, clicked, replied; bounces and
    unsubscribes; rates over sent messages (machine opens and clicks are left out)."""
    counts = (tracking.engagement_counts(session, Message.rule_id,
                                         Message.rule_id.in_(rule_ids)) if rule_ids else {})
    stats = {}
    for rid in rule_ids:
        entry = dict(counts.get(rid) or dict.fromkeys(tracking.ENGAGEMENT_COUNTS, 0))
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


def _lookup(path: str, event_data: dict, contact: Contact):
    source, _, rest = path.partition(".")
    value = event_data if source == "data" else {
        **(contact.attributes or {}), "email": contact.email, "name": contact.name,
        "timezone": contact.timezone, "subscription": contact.subscription}
    for key in rest.split("."):
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def matches(conditions: list[dict], event_data: dict, contact: Contact) -> bool:
    """All conditions hold (numbers compare as numbers, text as text)."""
    for c in conditions:
        found, value = _lookup(c["field"], event_data, contact)
        op, wanted = c["op"], c.get("value")
        if op == "exists":
            ok = found and value is not None
        elif not found:
            ok = op == "not_equals"
        elif op == "equals":
            ok = value == wanted or str(value) == str(wanted)
        elif op == "not_equals":
            ok = not (value == wanted or str(value) == str(wanted))
        elif op == "contains":
            ok = (wanted in value) if isinstance(value, (list, dict)) else \
                str(wanted).lower() in str(value).lower()
        else:
            try:
                a, b = float(value), float(wanted)
            except (TypeError, ValueError):
                return False
            ok = a > b if op == "greater" else a < b
        if not ok:
            return False
    return True


# -- receiving an event ------------------------------------------------------------------

def check_event(body) -> dict:
    """Validate an event body (422 naming the field)."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    event_id = body.get("id")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > MAX_ID_CHARS:
        raise InvalidInput(f"id is required: your unique id for this event (at most "
                           f"{MAX_ID_CHARS} characters)", field="id")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise InvalidInput("name is required (like cart_abandoned)", field="name")
    try:
        email = contacts.normalize_email(body.get("email"))
    except contacts.RowError as exc:
        raise InvalidInput(str(exc), field="email") from None
    data = body.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput("data must be an object", field="data")
    occurred = body.get("occurred_at")
    if occurred is not None:
        try:
            occurred = dt.datetime.fromisoformat(str(occurred).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput("occurred_at must be ISO 8601 with an offset",
                               field="occurred_at") from None
        if occurred.tzinfo is None:
            raise InvalidInput("occurred_at needs an offset (like +00:00)",
                               field="occurred_at")
    return {"id": event_id.strip(), "name": name.strip(), "email": email, "data": data,
            "occurred_at": occurred}


def receive(session: Session, team_id: int, user_id: int | None, event: dict,
            now: dt.datetime) -> tuple[dict, bool]:
    """Record the event, cancel what it cancels, queue what its rules queue.

    Returns (the answer, whether it is new). A repeated id returns the first answer.
    """
    earlier = _answered(session, team_id, event["id"])
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
    contact = contacts.ensure_contact(session, team_id, event["email"], now)
    cancelled = _cancel(session, team_id, event["name"], contact, now, row.id)
    queued = []
    rules = session.scalars(select(Rule).where(Rule.team_id == team_id, Rule.active,
                                               Rule.event == event["name"])
                            .order_by(Rule.id)).all()
    for rule in rules:
        if not matches(rule.conditions or [], event["data"], contact):
            continue
        if _capped(session, rule, contact, now):
            continue
        timing = dict(rule.timing or {})
        if rule.delay_seconds or not set(timing) - {"window"}:
            timing["delay_seconds"] = rule.delay_seconds
        message = messages.create_message(session, team_id=team_id, user_id=user_id, body={
            "to": contact.email, "template_id": rule.template_id,
            "data": {**(rule.data or {}), **event["data"],
                     "event": {"name": event["name"], "id": event["id"]}},
            **timing}, now=now, origin_key=f"rule:{rule.id}:event:{row.id}")
        message.rule_id, message.event_id, message.event_at = rule.id, row.id, now
        queued.append(message.id)
    row.response = {"event_id": row.id, "messages": queued, "cancelled": cancelled}
    session.flush()
    return row.response, True


def _answered(session: Session, team_id: int, external_id: str) -> dict | None:
    """The answer an event id already got (a committed event always has one)."""
    return session.scalar(select(Event.response).where(Event.team_id == team_id,
                                                       Event.external_id == external_id))


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


def _capped(session: Session, rule: Rule, contact: Contact, now: dt.datetime) -> bool:
    cap = rule.frequency_cap
    if not cap:
        return False
    since = now - dt.timedelta(seconds=cap["seconds"])
    count = session.scalar(select(func.count()).select_from(Message).where(
        and_(Message.rule_id == rule.id, Message.contact_id == contact.id,
             Message.created_at >= since, Message.status != "cancelled")))
    return count >= cap["max"]


def get_rule(session: Session, team_id: int, rule_id) -> Rule:
    """The team's rule, or NotFound."""
    return lookup.team_row(session, Rule, team_id, rule_id, "rule")



def seed_rules(session: Session, team_id: int, user_id: int | None, key: str,
               allowed_hosts: tuple[str, ...], now: dt.datetime) -> list[Rule]:
    """A ready-made set of rules (see templates/rules.json) with the starter templates they
    use, loaded into the team (templates it already has by name are reused)."""
    from scheduler import starters
    seeds = starters.rule_seeds()
    if not isinstance(key, str) or key not in seeds:
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
                body=starters.template_body(starter))
            session.flush()
        body = {k: v for k, v in spec.items() if k != "starter"}
        made.append(create_rule(session, team_id, {**body, "template_id": template.id}, now))
    return made
