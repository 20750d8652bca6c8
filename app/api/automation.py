"""REST API for triggers: events (signed webhooks or Bearer), rules, the webhook secret.

Routes live on the API blueprint (app.api.bp), with its error shape.
"""
from __future__ import annotations

import time

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from app import actor, audit, ctx, idempotent
from app.api import require_token, responses
from app.api.endpoint import json_object, route
from app.audit import changes_nothing
from scheduler import commands, sanity
from scheduler.audience import guard
from scheduler.automation import campaigns, events, schedules
from scheduler.delivery.statistics import variant_stats
from scheduler.errors import DomainError
from scheduler.store import idempotency, lookup
from scheduler.store.db import utcnow
from scheduler.store.models import Campaign, Rule, Schedule, Team
from scheduler.typed import parse

bp = Blueprint("automation", __name__)

MAX_UNNAMED = 10


def _signed_team(header: str, body: bytes) -> int:
    """The team whose webhook secret signed `body` (401 otherwise).

    The sender names its team (`?team=ID`, or `team=ID` in the signature header), so only
    that team's secret is tried; unnamed, at most MAX_UNNAMED teams' secrets are (a small
    deployment's old senders), never every team's. Failures are throttled per client.
    """
    ctx().throttle.check()
    c, now = ctx(), utcnow()
    named = request.args.get("team") or dict(
        item.strip().partition("=")[::2] for item in header.split(",")).get("team")
    with c.db.read() as s:  # the secrets exist already: nothing to write
        query = select(Team.id).where(Team.webhook_secret.is_not(None))
        if named is not None:
            team = lookup.query_id(named, "team")
            if team is None:
                raise events.Unauthorized("team must be a team id")
            query = query.where(Team.id == team)
        candidates = s.scalars(query.limit(MAX_UNNAMED + 1)).all()
        if len(candidates) > MAX_UNNAMED:
            ctx().throttle.failed()
            raise events.Unauthorized("name your team: add ?team=ID to the webhook URL (or "
                                      "team=ID to the signature header)")
        failure = events.Unauthorized("no team has a webhook secret yet")
        for team_id in candidates:
            current, previous, _ = events.webhook_secrets(s, c.cipher, team_id, now)
            try:
                events.verify(header, body, [x for x in (current, previous) if x],
                              time.time())
                return team_id
            except events.Unauthorized as exc:
                failure = exc
    ctx().throttle.failed()
    raise failure


@route(bp, "POST", "/events", body=commands.NewEvent, body_kind="raw",
       answers={202: responses.EventAnswer}, auth="token_or_signature")
@changes_nothing
def receive_event():
    """An event from the user's systems: queues what its rules say, cancels what it cancels.

    202 with {"event_id", "messages", "cancelled"}; the same `id` again answers the same
    without doing anything. Bearer token or X-Mailrelease-Signature. With `Prefer:
    respond-async` (RFC 7240) it is stored and answered at once ({"event_id", "status":
    "pending"}); GET /events/{event_id} shows what it did once its rules ran.
    """
    request.max_content_length = events.MAX_EVENT_BYTES
    return _authenticated(_receive)


@route(bp, "POST", "/events/batch", body=commands.NewEventBatch, body_kind="raw",
       answers={200: responses.BatchAnswer}, auth="token_or_signature")
@changes_nothing
def receive_events():
    """Up to 500 events at once: one answer per event, in order, each idempotent on its
    `id` as POST /events is; one that is refused does not stop the others. With `Prefer:
    respond-async`, all are stored at once and run after the answer."""
    request.max_content_length = MAX_BATCH_BYTES
    return _authenticated(_receive_batch)


MAX_BATCH_BYTES = 8 * 1024 * 1024


def _authenticated(receive):
    """Run `receive(team_id, user_id, raw)` for a Bearer token or a signed webhook."""
    raw = request.get_data(cache=True)
    if request.headers.get("Authorization"):
        return require_token(lambda: receive(g.team_id, g.user_id, raw))()
    signature = request.headers.get("X-Mailrelease-Signature")
    if not signature:
        raise events.Unauthorized("sign the request (X-Mailrelease-Signature, see GET "
                                  "/api/v1/webhook-secret) or send a Bearer token")
    return receive(_signed_team(signature, raw), None, raw)


def _asynchronous() -> bool:
    return any(p.strip().split(";")[0].strip().lower() == "respond-async"
               for p in request.headers.get("Prefer", "").split(","))


def _receive(team_id: int, user_id: int | None, raw: bytes):
    c = ctx()
    event = events.event_fields(parse(commands.NewEvent, sanity.loads(raw)))
    now = utcnow()
    if _asynchronous():
        with c.db.write() as s:  # one INSERT: the rules run after the answer
            row, new = events.accept_event(s, team_id, user_id, event, now)
            answer = events.accepted(row)
        if new:
            c.events.poke()  # its rules run on this process's events thread
        resp = jsonify(answer)
        resp.headers["Preference-Applied"] = "respond-async"
        resp.headers["Location"] = f"/api/v1/events/{answer['event_id']}"
    else:
        with c.db.read() as s:  # rules matched and their messages rendered
            planned = events.plan_event(s, team_id, user_id, event, now)
        with c.db.write() as s:
            answer, new = events.store_event(s, team_id, planned, now)
        if new and answer["messages"]:
            c.wake_worker()
        resp = jsonify(answer)
    resp.headers["Idempotent-Replayed"] = "false" if new else "true"
    return resp, 202


def _receive_batch(team_id: int, user_id: int | None, raw: bytes):
    c = ctx()
    batch = parse(commands.NewEventBatch, sanity.loads(raw))
    items: list[dict] = []
    parsed: list[tuple[int, dict]] = []
    for index, entry in enumerate(batch.events):
        given = entry.get("id") if isinstance(entry, dict) else None
        try:
            parsed.append((index, events.event_fields(parse(commands.NewEvent, entry))))
        except DomainError as exc:
            items.append(_refused(index, given, exc))
    now = utcnow()
    if _asynchronous():
        fresh = False
        with c.db.write() as s:  # every event stored in one transaction
            for index, event in parsed:
                row, new = events.accept_event(s, team_id, user_id, event, now)
                items.append({"index": index, "id": event["id"], "status_code": 202,
                              "replayed": not new, "answer": events.accepted(row)})
                fresh = fresh or new
        if fresh:
            c.events.poke()
    else:
        planned = []
        with c.db.read() as s:
            for index, event in parsed:
                try:
                    planned.append((index, events.plan_event(s, team_id, user_id, event,
                                                             now)))
                except DomainError as exc:
                    items.append(_refused(index, event["id"], exc))
        queued = False
        with c.db.write() as s:
            for index, plan in planned:
                try:
                    with s.begin_nested():
                        answer, new = events.store_event(s, team_id, plan, now)
                except DomainError as exc:
                    items.append(_refused(index, plan.event["id"], exc))
                    continue
                queued = queued or bool(new and answer["messages"])
                items.append({"index": index, "id": plan.event["id"], "status_code": 202,
                              "replayed": not new, "answer": answer})
        if queued:
            c.wake_worker()
    return jsonify({"items": sorted(items, key=lambda x: x["index"])}), 200


def _refused(index: int, given, exc: DomainError) -> dict:
    return {"index": index, "id": str(given)[:200] if isinstance(given, str) else None,
            "status_code": exc.status,
            "error": {"code": exc.code, "message": exc.message, "field": exc.field}}


@route(bp, "GET", "/events/<event_id>", answers={200: responses.EventOutcome})
def get_event(event_id):
    """An event and what it did: `status` "pending" until its rules ran (accepted with
    Prefer: respond-async), then its messages and cancellations."""
    with ctx().db.read() as s:
        row = events.get_event(s, g.team_id, event_id)
        return jsonify({**events.accepted(row), "id": row.external_id, "name": row.name,
                        "email": row.email, "received_at": row.received_at.isoformat()})


@route(bp, "GET", "/webhook-secret", answers={200: responses.WebhookSecret}, role="member",
       action="read the webhook secret")
def webhook_secret():
    """The team's webhook signing secret (and the previous one while a rotation lasts).
    Not for viewers: whoever holds it can queue mail."""
    c = ctx()
    with c.db.write() as s:
        current, previous, until = events.webhook_secrets(s, c.cipher, g.team_id, utcnow())
    return jsonify({"secret": current, "team": g.team_id,
                    "previous_valid_until": until.isoformat() if until else None,
                    "header": "X-Mailrelease-Signature: t=<unix seconds>,v1=<hex "
                              "HMAC-SHA256 of \"<t>.<raw body>\" with the secret>"})


@route(bp, "POST", "/webhook-secret/rotate", answers={200: responses.WebhookSecret},
       role="member")
def rotate_webhook_secret():
    """A new secret; the old one is accepted for 24 h more."""
    c = ctx()
    now = utcnow()
    with c.db.write() as s:
        events.rotate_secret(s, c.cipher, actor(), now)
        current, previous, until = events.webhook_secrets(s, c.cipher, g.team_id, now)
    return jsonify({"secret": current, "team": g.team_id,
                    "previous_valid_until": until.isoformat() if until else None})


@route(bp, "POST", "/rules", body=commands.NewRule | commands.RuleSeed, body_kind="raw",
       answers={201: responses.Rule | responses.Page[responses.Rule],
                200: responses.Page[responses.Rule]}, role="member")
def create_rule():
    """A rule, or a ready-made set of them with {"seed": key}.
    When `event` arrives (and `conditions` hold), queue `template_id` after
    `delay_seconds` (or at a `local_time`, the `best_hour`, within a `window`); `cancel_on`
    events cancel what it queued and has not sent. A seed answers the list it added."""
    c = ctx()
    body = json_object()
    if "seed" in body:
        seed = parse(commands.RuleSeed, body)
        with c.db.write() as s:
            made = events.seed_rules(s, g.team_id, g.user_id, seed.seed,
                                     c.settings.content_hosts, utcnow(), actor())
            if not made:  # the set was added before: its rules are not made twice
                audit.skip()
            return jsonify({"items": [events.rule_as_dict(r) for r in made],
                            "next_cursor": None}), 201 if made else 200
    command = parse(commands.NewRule, body)
    with c.db.write() as s:
        rule = events.create_rule(s, g.team_id, command, utcnow(), actor())
        return jsonify(events.rule_as_dict(rule)), 201


@route(bp, "GET", "/rules", answers={200: responses.Page[responses.Rule]})
def list_rules():
    """The team's rules."""
    with ctx().db.read() as s:
        rows = s.scalars(select(Rule).where(Rule.team_id == g.team_id).order_by(Rule.id)).all()
        stats = events.rule_stats(s, [r.id for r in rows])
        return jsonify({"items": [events.rule_as_dict(r, stats[r.id]) for r in rows],
                        "next_cursor": None})


@route(bp, "GET", "/rules/<rule_id>", answers={200: responses.Rule})
def get_rule(rule_id):
    """One rule, with its counts and rates, and the sender guard's numbers."""
    with ctx().db.read() as s:
        rule = events.get_rule(s, g.team_id, rule_id)
        return jsonify({**events.rule_as_dict(rule, events.rule_stats(s, [rule.id])[rule.id]),
                        "guard": guard.pause_state(s, "rule", rule)})


@route(bp, "POST", "/rules/<rule_id>/resume", answers={200: responses.Resumed},
       role="member")
def resume_rule(rule_id):
    """Resume a rule the sender guard paused: what it held goes now."""
    return resume("rule", rule_id)


def resume(kind: str, raw_id):
    """Resume the caller's paused campaign, rule or account; answers {released}."""
    c, who = ctx(), actor()
    with c.db.write() as s:
        released = guard.resume(s, who, kind, guard.pausable(s, who, kind, raw_id),
                                utcnow())
    c.wake_worker()
    return jsonify({"released": released})


@route(bp, "DELETE", "/rules/<rule_id>", answers={204: None}, role="member")
def delete_rule(rule_id):
    """Delete a rule; what it queued stays queued."""
    with ctx().db.write() as s:
        events.delete_rule(s, actor(), rule_id, utcnow())
    return "", 204



@route(bp, "POST", "/schedules", body=commands.NewSchedule,
       answers={201: responses.Schedule}, role="member")
def create_schedule(body: commands.NewSchedule):
    """A recurring send: `cron` (minute hour day month weekday) in `timezone`,
    `template_id`, `to`, optional `data`. Each occurrence becomes its own message."""
    c = ctx()
    now = utcnow()
    with c.db.write() as s:
        schedule_id = schedules.create_schedule(s, g.team_id, g.user_id, body, now,
                                                actor()).id
    # An occurrence in the next minutes is queued at once (rendered outside the write).
    schedules.queue_round(c.db, schedule_id, now)
    with c.db.read() as s:
        out = schedules.schedule_as_dict(schedules.get_schedule(s, g.team_id, schedule_id))
    c.wake_worker()
    return jsonify(out), 201


@route(bp, "GET", "/schedules", answers={200: responses.Page[responses.Schedule]})
def list_schedules():
    """The team's schedules with their next occurrence."""
    with ctx().db.read() as s:
        rows = s.scalars(select(Schedule).where(Schedule.team_id == g.team_id)
                         .order_by(Schedule.id))
        return jsonify({"items": [schedules.schedule_as_dict(x) for x in rows],
                        "next_cursor": None})


@route(bp, "GET", "/schedules/<schedule_id>", answers={200: responses.Schedule})
def get_schedule(schedule_id):
    """One schedule."""
    with ctx().db.read() as s:
        return jsonify(schedules.schedule_as_dict(
            schedules.get_schedule(s, g.team_id, schedule_id)))


@route(bp, "DELETE", "/schedules/<schedule_id>", answers={200: responses.Schedule},
       role="member")
def stop_schedule(schedule_id):
    """Stop a schedule (no further occurrences; queued ones can still be cancelled)."""
    return jsonify(_schedule_action(schedule_id, schedules.stop_schedule))


@route(bp, "PATCH", "/schedules/<schedule_id>", body=commands.ScheduleChange,
       answers={200: responses.Schedule}, role="member")
def change_schedule(schedule_id, body: commands.ScheduleChange):
    """Edit a schedule: name, cron, timezone, to, data, catch_up."""
    with ctx().db.write() as s:
        found = schedules.change_schedule(s, actor(), schedule_id, body, utcnow())
        return jsonify(schedules.schedule_as_dict(found))


def _schedule_action(schedule_id, action) -> dict:
    """Pause, resume or stop; a second call is answered alike and changes nothing."""
    with ctx().db.write() as s:
        before = schedules.schedule_state(schedules.get_schedule(s, g.team_id, schedule_id))
        out = schedules.schedule_as_dict(action(s, actor(), schedule_id, utcnow()))
    if out["state"] == before:
        audit.skip()
    return out


@route(bp, "POST", "/schedules/<schedule_id>/pause", answers={200: responses.Schedule},
       role="member")
def pause_schedule(schedule_id):
    """Pause a schedule: no occurrences until it is resumed."""
    return jsonify(_schedule_action(schedule_id, schedules.pause_schedule))


@route(bp, "POST", "/schedules/<schedule_id>/resume", answers={200: responses.Schedule},
       role="member")
def resume_schedule(schedule_id):
    """Resume a paused schedule from its next occurrence after now."""
    out = _schedule_action(schedule_id, schedules.resume_schedule)
    ctx().wake_worker()
    return jsonify(out)


@route(bp, "POST", "/campaigns", body=commands.NewCampaign,
       answers={201: responses.Campaign}, role="member",
       max_bytes=commands.MAX_REQUEST_WITH_FILES)
def create_campaign(body: commands.NewCampaign):
    """A mail merge: `template_id` or `variants`, `audience` ("all", contact_ids or a
    filter), timing for everyone, optional `ab` (test_fraction, metric, decide_after_seconds)."""
    c = ctx()
    with c.db.read() as s:  # rendered before the write transaction
        prepared = campaigns.prepare_campaign(s, g.team_id, g.user_id, body, utcnow(),
                                              allowed_hosts=c.settings.content_hosts)
    with c.db.write() as s:
        held = idempotent.claim(s)
        campaign = campaigns.store_campaign(s, prepared, actor())
        s.flush()
        out = {**campaigns.campaign_as_dict(campaign),
               "warnings": campaigns.sending_warnings(s, campaign, c.settings.daily_cap,
                                                      utcnow())}
        idempotency.remember(s, held, 201, out)
    c.wake_worker()
    return jsonify(out), 201


@route(bp, "GET", "/campaigns", answers={200: responses.Page[responses.Campaign]})
def list_campaigns():
    """The team's campaigns, newest first."""
    with ctx().db.read() as s:
        rows = s.scalars(select(Campaign).where(Campaign.team_id == g.team_id)
                         .order_by(Campaign.id.desc()))
        return jsonify({"items": [campaigns.campaign_as_dict(x) for x in rows],
                        "next_cursor": None})


@route(bp, "GET", "/campaigns/<campaign_id>", answers={200: responses.Campaign})
def get_campaign(campaign_id):
    """One campaign with its counts and decision, and the sender guard's numbers."""
    with ctx().db.read() as s:
        campaign = campaigns.get_campaign(s, g.team_id, campaign_id)
        return jsonify({**campaigns.campaign_as_dict(campaign),
                        "guard": guard.pause_state(s, "campaign", campaign)})


@route(bp, "POST", "/campaigns/<campaign_id>/resume", answers={200: responses.Resumed},
       role="member")
def resume_campaign(campaign_id):
    """Resume a campaign the sender guard paused: what it held goes now."""
    return resume("campaign", campaign_id)


@route(bp, "POST", "/campaigns/preview", body=commands.NewCampaign,
       answers={200: responses.CampaignPreview}, role="member",
       max_bytes=commands.MAX_REQUEST_WITH_FILES)
@changes_nothing
def preview_campaign(body: commands.NewCampaign):
    """Who a campaign would go to, and what it would do to the sending accounts' and
    domain's 24 h counts (Gmail's bulk-sender threshold), without queueing anything."""
    c = ctx()
    with c.db.read() as s:
        return jsonify(campaigns.preview(s, g.team_id, g.user_id, body,
                                         c.settings.daily_cap, utcnow()))


@route(bp, "GET", "/campaigns/<campaign_id>/stats", answers={200: responses.Campaign})
def campaign_stats(campaign_id):
    """Per variant: queued, sent, people who opened, clicked, replied, and their rates."""
    with ctx().db.read() as s:
        campaign = campaigns.get_campaign(s, g.team_id, campaign_id)
        return jsonify(campaigns.campaign_as_dict(campaign,
                                                  variant_stats(s, campaign)))
