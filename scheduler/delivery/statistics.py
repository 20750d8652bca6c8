"""What the dashboard shows: delivery outcomes per day, per campaign and per A/B variant."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from scheduler.errors import InvalidInput
from scheduler.store.models import Campaign, Message, MessageEvent, OutcomeCount
from scheduler.store.queue import OUTCOMES

SERIES = OUTCOMES
MAX_DAYS = 366
MAX_CAMPAIGNS = 20


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}", field="tz") from None


def over_time(session: Session, team_id: int, *, days: int, zone: str | None,
              now: dt.datetime, campaign_id: int | None = None) -> dict:
    """Per local day of the last `days` (today included): how many messages were sent,
    and how many got their first (human) open, click, reply, bounce or unsubscribe.

    Read from the hourly counts kept as events happen, so its cost does not grow with
    the events; a zone whose offset is not whole hours is counted to the hour.
    """
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be between 1 and {MAX_DAYS}", field="days")
    tz = _zone(zone)
    today = now.astimezone(tz).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), tz)
    # The hours counted as the events happened (OutcomeCount), from the first local day.
    query = (select(OutcomeCount.hour, OutcomeCount.kind, func.sum(OutcomeCount.n))
             .where(OutcomeCount.team_id == team_id,
                    OutcomeCount.hour >= start.astimezone(dt.UTC))
             .group_by(OutcomeCount.hour, OutcomeCount.kind))
    if campaign_id is not None:
        query = query.where(OutcomeCount.campaign_id == campaign_id)
    tally: dict[tuple[str, dt.date], int] = defaultdict(int)
    for hour, kind, n in session.execute(query):
        tally[(kind, hour.astimezone(tz).date())] += int(n)
    dates = [first + dt.timedelta(days=i) for i in range(days)]
    series = {kind: [tally.get((kind, d), 0) for d in dates] for kind in SERIES}
    return {"days": [d.isoformat() for d in dates], "series": series,
            "totals": {kind: sum(values) for kind, values in series.items()},
            "timezone": tz.key}


def _rates(entry: dict) -> dict:
    sent = entry["sent"]
    return {m: round(entry[k] / sent, 4) if sent else None
            for m, k in (("open", "opened"), ("click", "clicked"), ("reply", "replied"),
                         ("bounce", "bounced"))}


def by_campaign(session: Session, team_id: int) -> list[dict]:
    """The latest campaigns with their counts and rates, and each one's variants."""
    rows = session.execute(select(Campaign.id, Campaign.name, Campaign.status,
                                  Campaign.winner)
                           .where(Campaign.team_id == team_id)
                           .order_by(Campaign.id.desc()).limit(MAX_CAMPAIGNS)).all()
    if not rows:
        return []
    counts = engagement_counts(session, Message.campaign_id,
                                        Message.team_id == team_id,
                                        Message.campaign_id.in_([r.id for r in rows]))
    out = []
    for row in rows:
        found = counts.get(row.id) or dict.fromkeys(ENGAGEMENT_COUNTS, 0)
        entry = {"id": row.id, "name": row.name, "status": row.status, "winner": row.winner,
                 **{k: found[k] for k in ("queued", *SERIES)}}
        entry["rates"] = _rates(entry)
        campaign = session.get_one(Campaign, row.id)
        entry["variants"] = variant_stats(session, campaign) if len(
            campaign.variants) > 1 else {}
        out.append(entry)
    return out


ENGAGEMENT_COUNTS = ("queued", "sent", "cancelled", "opened", "clicked", "replied", "bounced",
                     "unsubscribed")



def engagement_counts(session, key, *where) -> dict:
    """Per value of `key` over the messages matching `where`: how many were queued, sent,
    cancelled; how many people opened, clicked, replied; bounces and unsubscribes.

    Machine opens and clicks are left out (they are counted on the message apart).
    """
    out: dict = {}

    def entry(k):
        return out.setdefault(k, dict.fromkeys(ENGAGEMENT_COUNTS, 0))
    rows = session.execute(select(
        key, func.count(),
        func.sum(case((Message.status == "sent", 1), else_=0)),
        func.sum(case((Message.status == "cancelled", 1), else_=0)),
        func.sum(case((Message.opens > 0, 1), else_=0)),
        func.sum(case((Message.clicks > 0, 1), else_=0)))
        .where(*where).group_by(key))
    for k, queued, sent, cancelled, opened, clicked in rows:
        entry(k).update(queued=queued, sent=sent or 0, cancelled=cancelled or 0,
                        opened=opened or 0, clicked=clicked or 0)
    events = session.execute(select(key, MessageEvent.type,
                                    func.count(func.distinct(MessageEvent.message_id)))
                             .join(MessageEvent, MessageEvent.message_id == Message.id)
                             .where(*where, MessageEvent.type.in_(("replied", "bounced",
                                                                   "unsubscribed")))
                             .group_by(key, MessageEvent.type))
    for k, kind, count in events:
        entry(k)[kind] = count
    return out


def variant_stats(session: Session, campaign: Campaign) -> dict[str, dict]:
    """Per variant: queued, sent, people who opened, clicked, replied, and rates."""
    counts = engagement_counts(session, Message.variant,
                                        Message.campaign_id == campaign.id,
                                        Message.follows_id.is_(None))
    out = {}
    for key in dict.fromkeys([v["key"] for v in campaign.variants] + list(counts)):
        found = counts.get(key) or dict.fromkeys(ENGAGEMENT_COUNTS, 0)
        entry = {k: found[k] for k in ("queued", "sent", "opened", "clicked", "replied")}
        sent = entry["sent"]
        entry["rates"] = {m: round(entry[k] / sent, 4) if sent else None
                          for m, k in (("open", "opened"), ("click", "clicked"),
                                       ("reply", "replied"))}
        out[key] = entry
    return out
