"""The audit log's writer: every change a signed-in user or an API token makes to a team
(a successful POST, PUT, PATCH or DELETE in the web app or the API) is recorded with who,
how, what and which object, without the values of secrets or content."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask, g, request

from app import ctx
from app.auth import READS
from scheduler import sanity
from scheduler.audience import teams
from scheduler.errors import DomainError
from scheduler.store.db import utcnow

log = logging.getLogger("mailrelease.audit")

# Requests that change nothing of the team's (previews, switching the team one looks at)
# or that machines send in volume and that are stored anyway (events).
NOT_CHANGES = {"api.preview_template", "api.preview_inline", "api.receive_event",
               "api.preview_reply",
               "ui.preview_page", "ui.compose_preview", "ui.switch_team", "ui.reply_preview",
               "ui.template_live_preview"}

LABELS = {
    "api.create_message": "queued a message", "ui.compose": "queued a message",
    "api.cancel_message": "cancelled a message", "ui.cancel": "cancelled a message",
    "api.send_now": "released a message now", "ui.send_now": "released a message now",
    "api.update_message": "edited a message", "ui.edit_message": "edited a message",
    "api.create_template": "created a template", "api.update_template": "changed a template",
    "api.delete_template": "deleted a template", "ui.template_page": "saved a template",
    "ui.add_starter": "added a starter template", "api.template_from_draft":
    "made a template from a Gmail draft", "ui.use_draft": "made a template from a Gmail draft",
    "api.add_contacts": "added contacts", "api.import_contacts": "imported contacts",
    "ui.import_contacts_page": "imported contacts",
    "api.delete_contact": "deleted a contact", "ui.delete_contact": "deleted a contact",
    "api.rotate_webhook_secret": "rotated the webhook secret",
    "api.create_rule": "created a rule", "api.delete_rule": "deleted a rule",
    "ui.rules_page": "changed rules", "ui.delete_rule": "deleted a rule",
    "api.create_schedule": "created a recurring send", "api.stop_schedule":
    "stopped a recurring send", "api.create_campaign": "started a campaign",
    "ui.campaigns_page": "started a campaign", "api.update_team": "changed team settings",
    "api.change_member": "changed a member's role", "ui.change_member":
    "changed a member's role", "api.remove_member": "removed a member",
    "ui.remove_member": "removed a member", "api.create_invitation": "invited someone",
    "ui.invite": "invited someone", "api.revoke_invitation": "withdrew an invitation",
    "ui.revoke_invitation": "withdrew an invitation", "api.share_account":
    "changed an account's sharing", "api.unshare_account": "changed an account's sharing",
    "ui.share_account": "changed an account's sharing",
    "ui.disconnect_account": "disconnected a Gmail account",
    "ui.account_cap": "changed an account's daily cap",
    "ui.settings_page": "changed settings", "api.reply_in_thread": "queued a thread reply",
    "ui.thread_page": "queued a thread reply",
}
# Field values worth keeping (never content, addresses of recipients, or secrets).
SHOWN = ("action", "role", "email", "name", "tracking", "status", "event", "daily_cap",
         "shared")


def _target(response) -> str | None:
    args = request.view_args or {}
    if args:
        name, value = next(iter(args.items()))
        return f"{name.removesuffix('_id')} {value}"
    kind = request.path.strip("/").split("/")[-1].removesuffix("s")
    if response.status_code == 201 and response.is_json:
        body = response.get_json(silent=True) or {}
        if isinstance(body, dict) and body.get("id") is not None:
            return f"{kind} {body['id']}"
    location = response.headers.get("Location")
    if location:
        parts = urlsplit(location).path.strip("/").split("/")
        if len(parts) == 2 and parts[0] in ("messages", "templates", "campaigns", "rules"):
            return f"{parts[0].removesuffix('s')} {parts[1]}"
    return None


def _detail() -> dict:
    if request.is_json:
        try:
            body = sanity.loads(request.get_data(cache=True))
        except DomainError:  # the request was refused for it; nothing to describe
            body = None
        fields = sorted(body) if isinstance(body, dict) else []
        values = body if isinstance(body, dict) else {}
    else:
        fields = sorted(k for k in request.form if k != "csrf_token")
        values = request.form
    detail = {"fields": fields} if fields else {}
    for key in SHOWN:
        if key in values and isinstance(values[key], (str, bool, int)):
            detail[key] = values[key] if not isinstance(values[key], str) else values[key][:200]
    return detail


def skip() -> None:
    """The request is answered without error but changed nothing (a refused form)."""
    g.audit_skip = True


def install(app: Flask) -> None:
    """Record every successful change made by a signed-in user or a token."""
    @app.after_request
    def _audit(response):
        if (request.method in READS or response.status_code >= 400
                or request.endpoint in NOT_CHANGES or g.get("team_id") is None
                or g.get("user_id") is None or request.blueprint not in ("api", "ui")
                or g.get("audit_skip")):
            return response
        try:
            with ctx().db.write() as s:
                teams.record(s, g.team_id, g.user_id,
                             "api" if request.blueprint == "api" else "web",
                             LABELS.get(request.endpoint,
                                        f"{request.method} {request.url_rule.rule}"),
                             _target(response), _detail(), utcnow())
        except Exception:  # noqa: BLE001 - the change is made; say loudly that its entry is not
            log.exception("action=audit_failed endpoint=%s", request.endpoint)
        return response
