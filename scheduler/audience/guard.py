"""The account-safety guard: what keeps a user's Gmail account and domain in good standing.

    counts      sends per account and per sending domain over a rolling 24 h; Gmail treats
                a domain that sent 5,000 messages in a day to personal Gmail addresses as a
                bulk sender from then on (SPF, DKIM, DMARC and one-click unsubscribe
                required), so the domain's count is warned about before it gets there and
                the crossing is kept for good (`sending_domain.bulk_since`)
    warm-up     an opt-in ramp for a new account: a daily ceiling that grows on WARMUP_STEPS;
                what exceeds it is held until the window reopens, never failed
    pauses      a campaign, rule or account whose last sends bounced (hard) or drew
                complaints above a threshold is paused with the numbers; its open messages
                are held (`paused`) until a person resumes it

Gmail gives a sender no per-message spam reports (only Postmaster Tools, per domain), so
the complaint signal is the recipients' unsubscribes (link, one-click, mail).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler.errors import NotFound
from scheduler.store import audit, lookup, queue
from scheduler.store.db import rowcount
from scheduler.store.models import (
    Campaign,
    GmailAccount,
    Message,
    MessageEvent,
    Rule,
    SendingDomain,
)

DAY = dt.timedelta(days=1)
BULK_SENDER_THRESHOLD = 5000
BULK_WARNING_AT = 0.8  # warn from 4,000 a day
PERSONAL_GMAIL = ("gmail.com", "googlemail.com")
# The ceiling for day n of the warm-up (day 0 is the day it was turned on); after the last
# step the account's own cap applies.
WARMUP_STEPS = (20, 20, 40, 40, 80, 80, 150, 150, 300, 300, 500, 500, 1000, 1000, 1500)


@dataclass(frozen=True)
class Thresholds:
    """When the guard pauses: over the last `window` sends (at least `min_sends` of
    them), a hard-bounce rate or a complaint rate at or above its limit, with at least
    `min_events` such events (so one bounce in a small test cannot pause a campaign)."""

    window: int = 100
    min_sends: int = 20
    min_events: int = 3
    bounce_rate: float = 0.05
    complaint_rate: float = 0.05


DEFAULTS = Thresholds()
_SCOPES: dict[str, tuple[Any, Any]] = {"account": (GmailAccount, Message.account_id),
           "campaign": (Campaign, Message.campaign_id),
           "rule": (Rule, Message.rule_id)}


# -- warm-up -----------------------------------------------------------------------------

def warmup_ceiling(account, now: dt.datetime) -> int | None:
    """Today's warm-up ceiling for the account, or None (not warming up, or done)."""
    started = account.warmup_started_at
    if started is None:
        return None
    day = max(0, (now - started) // DAY)
    return WARMUP_STEPS[day] if day < len(WARMUP_STEPS) else None


def set_warmup(session: Session, actor, account_id, on: bool, now: dt.datetime):
    """Start (from today) or stop the warm-up ramp of one of the caller's accounts."""
    from scheduler.audience.teams import own_account
    account = own_account(session, actor, account_id)
    if on and account.warmup_started_at is None:
        account.warmup_started_at = now
    elif not on:
        account.warmup_started_at = None
    # What waited for the ceiling is looked at again (held again if it still must wait).
    queue.release_held(session, account.id, "daily_limit", now,
                       "warm-up " + ("started" if on else "ended"))
    audit.record(session, actor, "changed an account's warm-up", f"account {account.id}",
                 {"warmup": on}, now)
    return account


# -- counts ------------------------------------------------------------------------------

def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _to_personal_gmail():
    addr = func.lower(Message.to_addr)
    return or_(*(cond for d in PERSONAL_GMAIL
                 for cond in (addr.like(f"%@{d}"), addr.like(f"%@{d}>"))))


def domain_counts(session: Session, domain: str, now: dt.datetime) -> dict:
    """A sending domain's last 24 h across every account on it: all sends, and those to
    personal Gmail addresses (what Gmail's bulk-sender rule counts)."""
    accounts = select(GmailAccount.id).where(
        func.lower(GmailAccount.email).like(f"%@{domain}"))
    recent = (Message.account_id.in_(accounts.scalar_subquery()), Message.status == "sent",
              Message.sent_at >= now - DAY)
    total = session.scalar(select(func.count()).where(*recent)) or 0
    personal = session.scalar(select(func.count()).where(*recent, _to_personal_gmail())) or 0
    return {"sent_24h": total, "to_personal_gmail_24h": personal}


def domain_warning(domain: str, personal: int, bulk_since: dt.datetime | None,
                   adding: int = 0) -> str | None:
    """What to tell a sender about Gmail's bulk-sender rule for their domain, if anything.
    `adding` is how many more a planned send would add to personal Gmail addresses."""
    if domain in PERSONAL_GMAIL:
        return None  # a consumer account: its own daily limit is the bound
    if bulk_since is not None:
        return (f"{domain} is a bulk sender for Gmail since {bulk_since:%Y-%m-%d} (permanent):"
                f" its mail must pass SPF, DKIM and DMARC and carry one-click unsubscribe")
    if personal + adding >= BULK_SENDER_THRESHOLD:
        return (f"{domain} would send {personal + adding:,} messages to personal Gmail "
                f"addresses in 24 h ({personal:,} already); at {BULK_SENDER_THRESHOLD:,} "
                f"Gmail treats the domain as a bulk sender for good: spread the sends over "
                f"more days, or set up SPF, DKIM and DMARC first")
    if personal + adding >= BULK_SENDER_THRESHOLD * BULK_WARNING_AT:
        return (f"{domain} is at {personal + adding:,} of Gmail's {BULK_SENDER_THRESHOLD:,} "
                f"a day to personal Gmail addresses, after which it is a bulk sender for good")
    return None


def personal_gmail_share(addresses) -> int:
    """How many of these addresses are personal Gmail ones."""
    return sum(1 for a in addresses if _domain(a.strip().rstrip(">")) in PERSONAL_GMAIL)


def record_domains(session: Session, now: dt.datetime) -> list[str]:
    """Keep each sending domain's peak and the day it became a bulk sender (the worker
    runs this every few minutes; any number of workers may: the updates are
    conditional). Returns the domains that crossed the threshold now."""
    crossed = []
    domains = {_domain(e) for e in session.scalars(select(GmailAccount.email))}
    for domain in sorted(domains - set(PERSONAL_GMAIL)):
        personal = domain_counts(session, domain, now)["to_personal_gmail_24h"]
        if session.get(SendingDomain, domain) is None:
            try:
                with session.begin_nested():
                    session.add(SendingDomain(domain=domain, peak=0))
            except IntegrityError:
                pass  # another worker added it
        session.execute(update(SendingDomain).where(SendingDomain.domain == domain,
                                                    SendingDomain.peak < personal)
                        .values(peak=personal, peak_at=now))
        if personal >= BULK_SENDER_THRESHOLD and rowcount(session.execute(
                update(SendingDomain).where(SendingDomain.domain == domain,
                                            SendingDomain.bulk_since.is_(None))
                .values(bulk_since=now))):
            crossed.append(domain)
    return crossed


def sending_report(session: Session, accounts: list, configured_cap: int | None,
                   now: dt.datetime, adding: dict[str, int] | None = None) -> dict:
    """What the dashboard, the API and a campaign's preview show: per account its 24 h
    sends against its cap (and warm-up ceiling) and any pause; per domain its 24 h counts
    and the bulk-sender warning. `adding` maps a domain to personal Gmail recipients a
    planned campaign would add."""
    from scheduler.audience.accounts import daily_cap
    rows: list[dict] = []
    domains: dict[str, None] = {}
    for account in accounts:
        sent = queue.sent_since(session, account.id, now - DAY)
        rows.append({"id": account.id, "email": account.email, "sent_24h": sent,
                     "daily_cap": daily_cap(account, configured_cap, now),
                     "warmup_ceiling": warmup_ceiling(account, now),
                     "warmup_started_at": _iso(account.warmup_started_at),
                     "paused_reason": account.paused_reason,
                     "paused_at": _iso(account.paused_at)})
        domains.setdefault(_domain(account.email), None)
    out = []
    for domain in sorted(domains):
        counts = domain_counts(session, domain, now)
        known = session.get(SendingDomain, domain)
        bulk_since = known.bulk_since if known is not None else None
        out.append({"domain": domain, **counts, "threshold": BULK_SENDER_THRESHOLD,
                    "bulk_since": _iso(bulk_since),
                    "warning": domain_warning(domain, counts["to_personal_gmail_24h"],
                                              bulk_since, (adding or {}).get(domain, 0))})
    return {"accounts": rows, "domains": out}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- pauses ------------------------------------------------------------------------------

def scope_numbers(session: Session, kind: str, scope_id: int, since: dt.datetime | None,
                  window: int = DEFAULTS.window) -> dict:
    """The last `window` sends of a campaign, rule or account (since it was last
    resumed) with their hard bounces and complaints (unsubscribes)."""
    column = _SCOPES[kind][1]
    query = select(Message.id).where(column == scope_id, Message.status == "sent")
    if since is not None:
        query = query.where(Message.sent_at >= since)
    ids = list(session.scalars(query.order_by(Message.sent_at.desc()).limit(window)))
    bounced = complaints = 0
    if ids:
        for kind_, detail in session.execute(select(MessageEvent.type, MessageEvent.detail)
                                             .where(MessageEvent.message_id.in_(ids),
                                                    MessageEvent.type.in_(
                                                        ("bounced", "unsubscribed")))):
            if kind_ == "bounced" and (detail or {}).get("hard", True):
                bounced += 1
            elif kind_ == "unsubscribed":
                complaints += 1
    return {"sends": len(ids), "hard_bounces": bounced, "complaints": complaints}


def _too_many(numbers: dict, limits: Thresholds) -> str | None:
    sends = numbers["sends"]
    if sends < limits.min_sends:
        return None
    for key, rate, what in (("hard_bounces", limits.bounce_rate, "hard-bounced"),
                            ("complaints", limits.complaint_rate, "unsubscribed")):
        count = numbers[key]
        if count >= limits.min_events and count / sends >= rate:
            return (f"{count} of its last {sends} messages {what} ({count / sends:.0%}, "
                    f"the limit is {rate:.0%})")
    return None


def after_signal(session: Session, message: Message, now: dt.datetime,
                 limits: Thresholds = DEFAULTS) -> list[str]:
    """A bounce or complaint was recorded on `message`: pause the narrowest of its
    campaign or rule, else its account, whose rates are now too high (a campaign's bad
    list pauses the campaign, not every other mail of the account). Returns what was
    paused ("campaign 3")."""
    paused = []
    for kind, scope_id in (("campaign", message.campaign_id), ("rule", message.rule_id),
                           ("account", message.account_id)):
        if scope_id is None:
            continue
        model = _SCOPES[kind][0]
        row = session.get(model, scope_id)
        if row is None:
            continue
        if row.paused_at is not None:
            if kind != "account":
                break  # already stopped where it comes from
            continue
        why = _too_many(scope_numbers(session, kind, scope_id, row.guard_since,
                                      limits.window), limits)
        if why is None:
            continue
        reason = f"paused by the sender guard: {why}; resume it once the list is cleaned"
        # Conditional: of several workers recording signals at once, one pauses it.
        if rowcount(session.execute(update(model).where(model.id == scope_id,
                                                        model.paused_at.is_(None))
                                    .values(paused_at=now, paused_reason=reason))):
            paused.append(f"{kind} {scope_id}")
            break
    return paused


def resume(session: Session, actor, kind: str, row, now: dt.datetime) -> int:
    """A person resumes a paused campaign, rule or account (`row`, already checked to be
    theirs): the guard counts afresh from now, and what it held is due now. Returns how
    many messages were released."""
    model, column = _SCOPES[kind]
    was = row.paused_reason
    session.execute(update(model).where(model.id == row.id)
                    .values(paused_at=None, paused_reason=None, guard_since=now))
    released = queue.release_held(session, None, "paused", now, f"{kind} resumed by "
                                  f"{actor.by}", scope=column == row.id)
    audit.record(session, actor, f"resumed a paused {kind}", f"{kind} {row.id}",
                 {"was": was, "released": released}, now)
    return released


def pausable(session: Session, actor, kind: str, raw_id):
    """The caller's campaign or rule (their team's), or account (their own), to resume;
    NotFound otherwise."""
    if kind == "account":
        from scheduler.audience.teams import own_account
        return own_account(session, actor, raw_id)
    if kind not in ("campaign", "rule"):
        raise NotFound(f"nothing pausable is called {kind[:20]!r}", field="kind")
    return lookup.team_row(session, _SCOPES[kind][0], actor.team_id, raw_id, kind,
                           field=f"{kind}_id")


def pause_state(session: Session, kind: str, row) -> dict:
    """What the API shows of a campaign's, rule's or account's guard: the pause, and the
    numbers it watches."""
    return {"paused_at": _iso(row.paused_at), "paused_reason": row.paused_reason,
            **scope_numbers(session, kind, row.id, row.guard_since)}


def paused_reason(session, message) -> str | None:
    """Why the message's account, campaign or rule is paused, or None (the gate's
    single statement found that something stops the send; this says what)."""
    for kind, scope_id in (("campaign", message.campaign_id), ("rule", message.rule_id),
                           ("account", message.account_id)):
        if scope_id is None:
            continue
        model = _SCOPES[kind][0]
        why = session.execute(select(model.paused_reason).where(
            model.id == scope_id, model.paused_at.is_not(None))).scalar()
        if why is not None:
            return f"{kind} {scope_id} is {why}"
    return None
