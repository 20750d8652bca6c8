"""A Gmail draft as a template, the way mail-merge tools for Gmail work.

The user writes a draft in Gmail with placeholders such as {{ first_name }}; we read it
(drafts.get, format raw) and keep its subject, HTML and text as template parts.
"""
from __future__ import annotations

import base64
import email
import email.policy
import html as html_lib
import re

from gmail_client.api import GmailService
from gmail_client.errors import GmailError
from gmail_client.oauth import can_compose, can_read
from scheduler.content.personalize import variables
from scheduler.errors import DomainError, InvalidInput, NotFound
from scheduler.store.models import GmailAccount

MAX_DRAFTS = 25
# Jinja blocks inside Gmail's HTML: its editor writes quotes and '>' in them as entities.
_JINJA_BLOCK = re.compile(r"({{.*?}}|{%.*?%})", re.S)
_TAG_IN_BLOCK = re.compile(r"<[^>]+>")


class GmailUnavailable(DomainError):
    """Gmail could not be asked (502): the reason says why."""

    status = 502
    code = "gmail_unavailable"


def check_access(account: GmailAccount) -> None:
    """Reading drafts (and threads) needs a grant with read or compose access."""
    scopes = account.scope_list
    if not (can_read(scopes) or can_compose(scopes)):
        raise InvalidInput(f"{account.email} did not grant Gmail read or compose access, "
                           f"which reading drafts needs: sign in again and allow it",
                           field="account")


def _clean_html(html: str) -> str:
    """Undo what Gmail's editor does to Jinja inside HTML: entities and stray tags."""
    def fix(match: re.Match) -> str:
        return html_lib.unescape(_TAG_IN_BLOCK.sub("", match.group(0)))
    return _JINJA_BLOCK.sub(fix, html)


def _parts(raw: bytes) -> dict:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    html_part = msg.get_body(preferencelist=("html",))
    text_part = msg.get_body(preferencelist=("plain",))
    html = _clean_html(html_part.get_content()) if html_part is not None else None
    text = text_part.get_content() if text_part is not None else None
    if html is None and text is not None:
        # A plain-text draft: its HTML part shows the same text, escaped, line by line.
        html = "<div>" + "<br>\n".join(html_lib.escape(line, quote=False)
                                       for line in text.splitlines()) + "</div>"
    return {"subject": str(msg.get("Subject", "")), "html": html or "", "text": text}


def gmail_failure(exc: GmailError, what: str, field: str) -> DomainError:
    """What a web request tells of a Gmail error: an id Gmail does not know (404, or a
    400 for an id that cannot be one) is the caller's NotFound; anything else, 502."""
    if exc.status in (400, 404):
        return NotFound(f"no {what} with that id in the mailbox", field=field)
    return GmailUnavailable(f"Gmail said: {exc}")


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except GmailError as exc:
        raise gmail_failure(exc, "draft", "draft_id") from None


def list_drafts(service: GmailService) -> list[dict]:
    """The newest drafts with their subject and the placeholders they use."""
    out = []
    for item in _call(service.list_drafts, MAX_DRAFTS):
        parts = read_draft(service, item["id"])
        out.append({"id": item["id"], "subject": parts["subject"],
                    "placeholders": sorted(placeholders(parts))})
    return out


def read_draft(service: GmailService, draft_id: str) -> dict:
    """subject, html and text of one draft."""
    if not isinstance(draft_id, str) or not draft_id.strip():
        raise InvalidInput("draft_id is required", field="draft_id")
    draft = _call(service.get_draft, draft_id.strip(), "raw")
    raw = draft.get("message", {}).get("raw", "")
    return _parts(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def placeholders(parts: dict) -> set[str]:
    """Every variable the parts read (best effort: a part that does not compile adds none)."""
    found: set[str] = set()
    for name in ("subject", "html", "text"):
        if parts.get(name):
            try:
                found |= variables(name, parts[name])
            except Exception:  # noqa: BLE001 - the save will name the syntax error
                continue
    return found
