"""Campaigns: a mail merge to an audience of contacts, optionally an A/B test whose winner
goes to the rest.

Unsubscribed and bounced contacts are skipped and counted. With `ab`, a test fraction of
the audience gets the variants (by weight) first; after `decide_after_seconds` the variant
with the best rate of the chosen metric (people's opens, clicks or replies: machine
signals never count) goes to everyone else. Too small a sample, or a tie, is decided by
the variants' order and the decision says so.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import random
import uuid
from dataclasses import dataclass
from email.headerregistry import Address

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gmail_client.mime import make_message_id
from scheduler.audience import conditions as conditions_of
from scheduler.audience import contacts, guard, segments
from scheduler.commands import (
    HEADER_FIELDS,
    TIMING,
    ContactFilter,
    ContactIds,
    FollowUp,
    NewCampaign,
    SegmentAudience,
    Variant,
)
from scheduler.content import attachments, live_images, templates
from scheduler.delivery.statistics import variant_stats
from scheduler.engine import messages
from scheduler.errors import Conflict, InvalidInput
from scheduler.store import audit, lookup
from scheduler.store.audit import Actor
from scheduler.store.db import Database, rowcount
from scheduler.store.models import Campaign, Contact, Message, MessageEvent, table
from scheduler.timing.release_at import Recipient, plan

log = logging.getLogger("mailrelease.campaigns")

METRICS = ("open", "click", "reply")
MIN_PER_VARIANT = 20
MAX_AUDIENCE = 100_000
CHUNK = 1000


def _template_parts(template) -> dict:
    return {"subject": template.subject, "html": template.html, "text": template.text,
            "amp": template.amp, "sources": template.sources or None,
            "template_id": template.id, "transactional": template.transactional,
            "tracking": template.tracking, "reply_to": template.reply_to,
            "cc": template.cc, "bcc": template.bcc, "attachments": template.attachments}


def _overridden(parts: dict, given: Variant | FollowUp, where: str) -> dict:
    """A variant's or a step's parts: its template's, with the subject or HTML it gives
    instead, compiled (422 naming the part and line)."""
    for name in ("subject", "html"):
        value = getattr(given, name)
        if value is not None:
            if not value.strip():
                raise InvalidInput(f"{where}.{name} must not be empty",
                                   field=f"{where}.{name}")
            parts[name] = value
    templates.check_parts(parts["subject"], parts["html"], parts["text"], parts["amp"])
    live_images.check_calls(parts["html"], parts.get("sources"))
    return parts


def _variants(session: Session, team_id: int, command: NewCampaign) -> list[dict]:
    out, keys = [], set()
    for i, v in enumerate(command.variants or [Variant(key="A")]):
        where = f"variants[{i}]"
        key = v.key or chr(ord("A") + i)
        if key in keys:
            raise InvalidInput(f"{where}.key {key!r} is used twice", field=f"{where}.key")
        keys.add(key)
        template_id = v.template_id or command.template_id
        if template_id is None:
            raise InvalidInput(f"{where}.template_id is required (or the campaign's "
                               f"template_id)", field=f"{where}.template_id")
        parts = _overridden(_template_parts(templates.get_template(session, team_id,
                                                                   template_id)), v, where)
        out.append({"key": key, "weight": float(v.weight), "parts": parts})
    return out


def _follow_ups(session: Session, team_id: int, command: NewCampaign,
                variants: list[dict]) -> list:
    """Steps sent `after_seconds` after the previous one unless its recipient replied (or
    clicked)."""
    steps = []
    for i, step in enumerate(command.follow_ups):
        where = f"follow_ups[{i}]"
        parts = dict(variants[0]["parts"])
        if step.template_id is not None:
            template = templates.get_template(session, team_id, step.template_id)
            parts.update(subject=template.subject, html=template.html, text=template.text,
                         amp=template.amp, template_id=template.id)
        parts = _overridden(parts, step, where)
        steps.append({"after_seconds": float(step.after_seconds), "unless": step.unless,
                      "out_of_office": step.out_of_office,
                      "parts": parts})
    return steps


def _audience(session: Session, team_id: int, spec) -> tuple[list[Contact], int]:
    """(contacts who may receive it, how many were skipped as unsubscribed/bounced)."""
    query = select(Contact).where(Contact.team_id == team_id)
    conditions = None
    if isinstance(spec, ContactIds):
        query = query.where(Contact.id.in_(spec.contact_ids))
    elif isinstance(spec, ContactFilter):
        conditions = [c.model_dump() for c in spec.filter]
        if any(not c["field"].startswith("contact.") for c in conditions):
            raise InvalidInput("audience.filter fields must start with contact.",
                               field="audience.filter")
    elif isinstance(spec, SegmentAudience):
        conditions = list(segments.get_segment(session, team_id, spec.segment_id).conditions)
    if conditions:  # what SQL can decide, the database does; Python checks the rest
        query = query.where(*(sql for sql in map(segments.as_sql, conditions)
                              if sql is not None))
    rows = session.scalars(query.order_by(Contact.id).limit(MAX_AUDIENCE + 1)).all()
    if len(rows) > MAX_AUDIENCE:  # before Python's checks: never a silently cut audience
        raise InvalidInput(f"the audience is larger than {MAX_AUDIENCE:,}", field="audience")
    if conditions:
        rows = [c for c in rows if conditions_of.matches(conditions, {}, c)]
    allowed = [c for c in rows if c.subscription == "subscribed"]
    return allowed, len(rows) - len(allowed)


def _assign(contacts: list[Contact], variants: list[dict]) -> list[tuple[Contact, dict]]:
    """Split by weight, as evenly as the weights allow (largest remainder)."""
    total = sum(v["weight"] for v in variants)
    shares = [len(contacts) * v["weight"] / total for v in variants]
    counts = [math.floor(x) for x in shares]
    for i in sorted(range(len(variants)), key=lambda i: shares[i] - counts[i],
                    reverse=True)[:len(contacts) - sum(counts)]:
        counts[i] += 1
    out, at = [], 0
    for variant, n in zip(variants, counts, strict=True):
        out += [(c, variant) for c in contacts[at:at + n]]
        at += n
    return out


@dataclass
class PreparedCampaign:
    """A checked campaign and its first messages rendered, ready for `store_campaign`."""

    campaign: Campaign  # not yet added to a session
    rows: list[dict]
    evts: list[dict]


def prepare_campaign(session: Session, team_id: int, user_id: int, command: NewCampaign,
                     now: dt.datetime, progress=None,
                     allowed_hosts: tuple[str, ...] = ()) -> PreparedCampaign:
    """Check, pick the audience and render the messages (the test group's, under A/B),
    reading only: a web request does this before its write transaction, so that rendering
    thousands of messages never holds the database's write lock."""
    variants = _variants(session, team_id, command)
    # Kept as JSON on the campaign, read by timing.plan for each recipient.
    timing = command.model_dump(mode="json", include=set(TIMING), exclude_none=True)
    ab = None
    if command.ab is not None:
        if len(variants) < 2:
            raise InvalidInput("an A/B test needs two variants or more", field="variants")
        ab = command.ab.model_dump()
    follow_ups = _follow_ups(session, team_id, command, variants)
    for variant in variants:
        variant["follow_ups"] = follow_ups
    contacts, skipped = _audience(session, team_id, command.audience)
    audience = command.audience if isinstance(command.audience, str) else \
        command.audience.model_dump()
    campaign = Campaign(team_id=team_id, created_by=user_id,
                        name=command.name or variants[0]["parts"]["subject"][:200],
                        variants=[{"key": v["key"], "weight": v["weight"],
                                   "parts": v["parts"], "follow_ups": follow_ups}
                                  for v in variants],
                        audience=audience, timing=timing, ab=ab,
                        data=command.data, from_addr=command.sender,
                        **messages.headers(command),
                        attachments=attachments.check(command.attachments, allowed_hosts),
                        status="testing" if ab else "done", created_at=now,
                        counts={"audience": len(contacts), "skipped_unsubscribed": skipped,
                                "to_personal_gmail": guard.personal_gmail_share(
                                    c.email for c in contacts)})
    order = list(contacts)
    # A fair test group, the same for the same team, time and audience.
    random.Random(f"{team_id}:{now.isoformat()}:{len(order)}").shuffle(order)
    if ab:
        size = max(len(variants), math.ceil(len(order) * ab["test_fraction"]))
        test, rest = order[:size], order[size:]
        campaign.pending = [c.id for c in rest]
        campaign.decide_at = now + dt.timedelta(seconds=ab["decide_after_seconds"])
        order = test
    rows, evts = _render(session, campaign, _assign(order, variants), now, progress)
    return PreparedCampaign(campaign, rows, evts)


def store_campaign(session: Session, prepared: PreparedCampaign,
                   actor: Actor | None = None) -> Campaign:
    """Store a prepared campaign and queue its messages (no render here)."""
    campaign = prepared.campaign
    pending = campaign.attachments
    campaign.attachments = attachments.save(session, campaign.team_id, campaign.created_by,
                                            pending, campaign.created_at)
    for row in prepared.rows:  # the rows copied the campaign's files as they were given
        if row["attachments"] is pending and pending is not None:
            row["attachments"] = campaign.attachments
    session.add(campaign)
    session.flush()
    queued = _insert(session, _own(prepared.rows, prepared.evts, campaign.id), prepared.evts)
    campaign.counts = {**(campaign.counts or {}), "queued": queued}
    audit.record(session, actor, "started a campaign", f"campaign {campaign.id}",
                 {"queued": queued}, campaign.created_at)
    return campaign


def preview(session: Session, team_id: int, user_id: int, command: NewCampaign,
            configured_cap: int | None, now: dt.datetime) -> dict:
    """Who the campaign would reach and what it would do to the sending account's and
    domain's 24 h counts, reading only (nothing rendered, nothing queued)."""
    contacts_, skipped = _audience(session, team_id, command.audience)
    account, _ = messages.pick_sender(session, team_id, user_id, command.sender)
    personal = guard.personal_gmail_share(c.email for c in contacts_)
    report, warnings = _sending(session, account, len(contacts_), personal, configured_cap,
                                now)
    return {**report, "audience": len(contacts_), "skipped_unsubscribed": skipped,
            "to_personal_gmail": personal, "warnings": warnings}


def sending_warnings(session: Session, campaign: Campaign, configured_cap: int | None,
                     now: dt.datetime) -> list[str]:
    """What a queued campaign does to its sender's standing (see `preview`)."""
    counts = campaign.counts or {}
    if not counts.get("audience"):
        return []
    account, _ = messages.pick_sender(session, campaign.team_id, campaign.created_by,
                                      campaign.from_addr)
    return _sending(session, account, counts["audience"], counts.get("to_personal_gmail", 0),
                    configured_cap, now)[1]


def _sending(session: Session, account, size: int, personal: int,
             configured_cap: int | None, now: dt.datetime) -> tuple[dict, list[str]]:
    domain = account.email.rpartition("@")[2].lower()
    report = guard.sending_report(session, [account], configured_cap, now,
                                  {domain: personal})
    warnings = [d["warning"] for d in report["domains"] if d["warning"]]
    mine = report["accounts"][0]
    room = max(0, mine["daily_cap"] - mine["sent_24h"])
    if size > room:
        which = "warm-up ceiling" if mine["warmup_ceiling"] == mine["daily_cap"] else "cap"
        warnings.append(f"{account.email} may send {mine['daily_cap']:,} in 24 h (its "
                        f"{which}; {mine['sent_24h']:,} sent): {size - room:,} of these "
                        f"{size:,} wait, held, until the window reopens")
    if mine["paused_reason"]:
        warnings.append(f"{account.email} is {mine['paused_reason']}")
    return report, warnings


def _copies(campaign: Campaign, parts: dict) -> dict:
    """Reply-To, Cc, Bcc and files of a campaign's message: the campaign's, else its
    template's."""
    return {name: getattr(campaign, name) or parts.get(name) or None
            for name in (*HEADER_FIELDS, "attachments")}


def _render(session: Session, campaign: Campaign, pairs, now: dt.datetime,
            progress=None) -> tuple[list[dict], list[dict]]:
    """The rows of one message per (contact, variant) and of its follow-ups, rendered
    (missing data holds that one), reading only. They name their campaign once it has an
    id (`_own`).

    `progress(n)` hears how many recipients are done, every CHUNK of them.
    """
    if not pairs:
        return [], []
    account, sender = messages.pick_sender(session, campaign.team_id, campaign.created_by,
                                           campaign.from_addr)
    domain = account.email.rpartition("@")[2]
    tracking_on = messages._team_tracks(session, campaign.team_id)
    rows, evts, done = [], [], 0
    for contact, variant in pairs:
        if done % CHUNK == 0 and done and progress is not None:
            progress(done)
        done += 1
        parts = variant["parts"]
        data = {**contacts.contact_data(contact, contact.email), **(campaign.data or {}),
                "campaign": {"id": campaign.id or 0, "variant": variant["key"]}}
        release_at, _ = plan(campaign.timing or {}, now, Recipient(contact.timezone))
        hold, shown, warning = messages._render_check(parts["subject"], parts["html"],
                                                      parts["text"], data, parts["amp"],
                                                      parts["sources"])
        mid = uuid.uuid4().hex
        to = str(Address(display_name=contact.name or "", addr_spec=contact.email))
        rows.append(dict(
            id=mid, team_id=campaign.team_id, account_id=account.id,
            created_by=campaign.created_by, to_addr=to, from_addr=sender,
            subject_tpl=parts["subject"], html_tpl=parts["html"], text_tpl=parts["text"],
            amp_tpl=parts["amp"], sources=parts["sources"], template_id=parts["template_id"],
            subject=shown, transactional=parts["transactional"],
            tracking=parts["tracking"] and tracking_on, contact_id=contact.id, data=data,
            **_copies(campaign, parts),
            status="held" if hold else "scheduled", release_at=release_at, error=hold,
            hold_kind="missing_data" if hold else None, attempts=0, needs_reconcile=False,
            opens=0, clicks=0, machine_opens=0, machine_clicks=0,
            rfc822_id=make_message_id(f"mr.{mid}", domain), campaign_id=campaign.id,
            origin_key=(contact.id, 0),
            variant=variant["key"], follows_id=None, follow_unless=None,
            follow_postpone=False, created_at=now,
            updated_at=now))
        evts.append({"message_id": mid, "type": "held" if hold else "scheduled", "at": now,
                     "detail": {"release_at": release_at.isoformat(),
                                "campaign_id": campaign.id, "variant": variant["key"],
                                **({"reason": hold} if hold else {}),
                                **({"warning": warning} if warning else {})}})
        previous, at, base = mid, release_at, rows[-1]
        for n, step in enumerate(variant.get("follow_ups") or [], start=1):
            at = at + dt.timedelta(seconds=step["after_seconds"])
            fid = uuid.uuid4().hex
            sparts = step["parts"]
            shold, sshown, _ = messages._render_check(sparts["subject"], sparts["html"],
                                                   sparts["text"], data, sparts["amp"],
                                                   sparts["sources"])
            rows.append({**base, "id": fid, "subject_tpl": sparts["subject"], "subject": sshown,
                         "html_tpl": sparts["html"], "text_tpl": sparts["text"],
                         "amp_tpl": sparts["amp"], "template_id": sparts["template_id"],
                         "status": "held" if shold else "scheduled", "release_at": at,
                         "error": shold, "hold_kind": "missing_data" if shold else None,
                         "rfc822_id": make_message_id(f"mr.{fid}", domain),
                         "origin_key": (contact.id, n),
                         "variant": f"{variant['key']}.{n}", "follows_id": previous,
                         "follow_unless": step["unless"],
                         "follow_postpone": step.get("out_of_office") == "postpone"})
            evts.append({"message_id": fid, "type": "held" if shold else "scheduled",
                         "at": now, "detail": {"release_at": at.isoformat(),
                                               "campaign_id": campaign.id,
                                               "follows": previous, "step": n,
                                               "unless": step["unless"]}})
            previous = fid
    if progress is not None:
        progress(done)
    return rows, evts


def _own(rows: list[dict], evts: list[dict], campaign_id: int) -> list[dict]:
    """The rendered rows as rows of campaign `campaign_id` (its id, their origin keys)."""
    for row in rows:
        contact_id, step = row["origin_key"]
        row.update(campaign_id=campaign_id,
                   origin_key=origin_key(campaign_id, contact_id, step))
        if "campaign" in row["subject_tpl"]:
            row["subject"] = None  # rendered before the campaign had its id
        row["data"] = {**row["data"], "campaign": {**row["data"]["campaign"],
                                                   "id": campaign_id}}
    for evt in evts:
        evt["detail"]["campaign_id"] = campaign_id
    return rows


def origin_key(campaign_id: int, contact_id: int, step: int) -> str:
    """The one message a campaign may make for a contact at a step (0: the first email)."""
    return f"campaign:{campaign_id}:contact:{contact_id}:step:{step}"


def _insert(session: Session, rows: list[dict], evts: list[dict]) -> int:
    for at in range(0, len(rows), CHUNK):
        session.execute(table(Message).insert(), rows[at:at + CHUNK])
    for at in range(0, len(evts), CHUNK):
        session.execute(table(MessageEvent).insert(), evts[at:at + CHUNK])
    return len(rows)


def decide_due(db: Database, now: dt.datetime) -> list[int]:
    """Decide every A/B test whose window has passed and send the winner to the rest.

    Each campaign in its own transaction, owned by whichever worker moves it out of
    'testing' first (see `store_decision`); returns the ids this caller decided.
    """
    with db.read() as session:
        due = session.scalars(select(Campaign.id).where(
            Campaign.status == "testing", Campaign.decide_at <= now)).all()
    done = []
    for campaign_id in due:
        try:
            with db.read() as session:  # the winner chosen and its messages rendered
                planned = plan_decision(session, campaign_id, now)
            if planned is None:
                continue
            with db.write() as session:
                if store_decision(session, planned, now):
                    done.append(campaign_id)
        except Exception as exc:  # noqa: BLE001 - one campaign must not stop the others
            # Still 'testing', so the next round tries again; the error is shown on it.
            log.exception("action=decision_failed campaign=%s", campaign_id)
            with db.write() as session:
                session.execute(update(Campaign).where(
                    Campaign.id == campaign_id, Campaign.status == "testing").values(
                    decision={"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:500],
                              "at": now.isoformat()}))
    return done


@dataclass
class Decision:
    """A decided A/B test and the winner's messages to the rest, rendered."""

    campaign_id: int
    winner: str
    decision: dict
    rows: list[dict]
    evts: list[dict]


def plan_decision(session: Session, campaign_id: int, now: dt.datetime) -> Decision | None:
    """Pick the winner (explained) and render it for the rest of the audience, reading
    only; None when the campaign is no longer being tested."""
    campaign = session.get(Campaign, campaign_id, populate_existing=True)
    if campaign is None or campaign.status != "testing" or not campaign.ab:
        return None
    metric, need = campaign.ab["metric"], campaign.ab["min_per_variant"]
    stats = variant_stats(session, campaign)
    keys = [v["key"] for v in campaign.variants]
    small = [k for k in keys if stats[k]["sent"] < need]
    if small:
        winner = keys[0]
        reason = (f"sample too small ({', '.join(small)} sent fewer than {need}): the first "
                  f"variant, {winner}, goes to the rest")
    else:
        rates = {k: stats[k]["rates"][metric] or 0.0 for k in keys}
        best = max(rates.values())
        leaders = [k for k in keys if rates[k] == best]
        winner = leaders[0]
        reason = (f"{winner} had the best {metric} rate ({best:.1%})" if len(leaders) == 1
                  else f"tie at {best:.1%} {metric} rate between {', '.join(leaders)}: the "
                       f"first of them, {winner}")
    rest = session.scalars(select(Contact).where(Contact.id.in_(campaign.pending or []),
                                                 Contact.subscription == "subscribed")
                           ).all()
    variant = next(v for v in campaign.variants if v["key"] == winner)
    rows, evts = _render(session, campaign, [(c, variant) for c in rest], now)
    return Decision(campaign.id, winner, {"winner": winner, "reason": reason,
                                          "metric": metric,
                                          "stats": {k: stats[k]["rates"] for k in keys}},
                    _own(rows, evts, campaign.id), evts)


def store_decision(session: Session, planned: Decision, now: dt.datetime) -> bool:
    """Claim the decision and queue the winner for the rest.

    The decision is claimed by a conditional UPDATE (testing → done) in the transaction
    that queues the rest: a second worker's UPDATE waits for this one and then matches
    nothing (False: someone else decided). The messages' origin keys are unique per
    (campaign, contact, step), so even a wrong claim could not queue anyone twice.
    """
    moved = rowcount(session.execute(update(Campaign).where(
        Campaign.id == planned.campaign_id, Campaign.status == "testing").values(
        status="done", decided_at=now).execution_options(synchronize_session=False)))
    if moved != 1:
        return False
    campaign = session.get_one(Campaign, planned.campaign_id, populate_existing=True)
    campaign.winner, campaign.decision = planned.winner, planned.decision
    queued = _insert(session, planned.rows, planned.evts)
    campaign.pending = []
    counts = campaign.counts or {}
    campaign.counts = {**counts, "queued": counts.get("queued", 0) + queued}
    return True


def prepare_addition(session: Session, team_id: int, campaign_id, contact: Contact,
                     now: dt.datetime) -> tuple[Campaign, list[dict], list[dict]]:
    """One more recipient for a campaign (from the Gmail add-on): its messages rendered as
    the campaign's own (the winner's, once an A/B test is decided), reading only."""
    campaign = get_campaign(session, team_id, campaign_id)
    if campaign.status == "testing":
        raise Conflict("this campaign's A/B test is still running: add the contact once "
                       "the winner is chosen", field="campaign_id")
    variants = campaign.variants or []
    variant = next((v for v in variants if v["key"] == campaign.winner), variants[0])
    rows, evts = _render(session, campaign, [(contact, variant)], now)
    return campaign, _own(rows, evts, campaign.id), evts


def store_addition(session: Session, actor: Actor, campaign: Campaign, rows: list[dict],
                   evts: list[dict]) -> int:
    """Queue a prepared addition; a contact already in the campaign is a 409 (each of its
    messages has the campaign's one origin key for that contact and step)."""
    keys = [r["origin_key"] for r in rows]
    if session.scalar(select(Message.id).where(Message.origin_key.in_(keys)).limit(1)):
        raise Conflict("the contact is already in this campaign", field="campaign_id")
    try:
        with session.begin_nested():
            queued = _insert(session, rows, evts)
    except IntegrityError:  # added at the same moment by another request
        raise Conflict("the contact is already in this campaign",
                       field="campaign_id") from None
    audit.record(session, actor, "added a contact to a campaign", f"campaign {campaign.id}",
                 {"queued": queued}, rows[0]["created_at"] if rows else None)
    return queued


def get_campaign(session: Session, team_id: int, campaign_id) -> Campaign:
    """The team's campaign, or NotFound."""
    return lookup.team_row(session, Campaign, team_id, campaign_id, "campaign")


def campaign_as_dict(campaign: Campaign, stats: dict | None = None) -> dict:
    """The API representation."""
    return {"id": campaign.id, "name": campaign.name, "status": campaign.status,
            "variants": [{"key": v["key"], "weight": v["weight"],
                          "template_id": v["parts"]["template_id"]}
                         for v in campaign.variants],
            "audience": campaign.audience, "ab": campaign.ab, "counts": campaign.counts,
            "decide_at": campaign.decide_at.isoformat() if campaign.decide_at else None,
            "winner": campaign.winner, "decision": campaign.decision,
            "reply_to": campaign.reply_to, "cc": campaign.cc or [], "bcc": campaign.bcc or [],
            "attachments": campaign.attachments or [],
            "created_at": campaign.created_at.isoformat(),
            **({"stats": stats} if stats is not None else {})}
