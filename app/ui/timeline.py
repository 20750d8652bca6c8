"""A message's timeline in words: each event as a sentence ("Held: the daily limit of 500
was reached; releases at 14:05 UTC"), with its details kept for whoever opens them.

Times are written as <time> elements in UTC with the zone named; the page's script shows
them in the viewer's own zone."""
from __future__ import annotations

import datetime as dt

from markupsafe import Markup, escape

# The tone of each event type: the dot's colour on the timeline.
_TONES = {"sent": "good", "opened": "good", "clicked": "good", "replied": "good",
          "failed": "bad", "bounced": "bad", "crashed": "bad", "unsubscribed": "warn",
          "held": "warn", "retry_wait": "warn", "cancelled": "warn"}

_HOLD_KINDS = {"daily_cap": "the account's daily limit was reached",
               "needs_data": "the template needs data it does not have",
               "reconnect": "the Gmail account needs reconnecting",
               "window": "outside its sending window",
               "too_late": "its time passed while no worker was running",
               "decision": "waiting for the A/B test's decision",
               "paused": "its rule or campaign is paused"}


def when(value) -> Markup:
    """A time as a <time> element: UTC with its zone, shown in the viewer's zone by script."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return Markup(escape(value))
    if not isinstance(value, dt.datetime):
        return Markup("")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    utc = value.astimezone(dt.UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        utc.isoformat(), utc.strftime("%a %d %b %Y, %H:%M UTC"))


def _who(by) -> str:
    if not isinstance(by, str):
        return ""
    kind, _, rest = by.partition(":")
    names = {"ui": "from the web app", "api": "through the API", "addon": "from Gmail",
             "event": "by an event", "worker": "by the worker"}
    return names.get(kind, f"by {by}")


def sentence(event: dict) -> Markup:
    """One event of a message's timeline as a sentence (HTML-safe)."""
    kind, d = event.get("type", ""), event.get("detail") or {}
    if not isinstance(d, dict):
        d = {}
    reason = d.get("reason") or d.get("error")
    text: Markup
    if kind == "scheduled":
        text = Markup("Scheduled")
        if d.get("release_at"):
            text += Markup(" for ") + when(d["release_at"])
        if isinstance(reason, str):
            text += Markup(": ") + escape(reason)
    elif kind == "draft":
        text = Markup("Saved as a draft")
    elif kind == "held":
        why = reason if isinstance(reason, str) else _HOLD_KINDS.get(d.get("kind"), "on hold")
        text = Markup("Held: ") + escape(why)
        if d.get("until"):
            text += Markup("; releases at ") + when(d["until"])
    elif kind == "sending":
        text = Markup("Being sent")
    elif kind == "sent":
        text = Markup("Sent through Gmail")
        if d.get("reconciled"):
            text += Markup(" (found in the mailbox after a worker stopped)")
        if d.get("warning"):
            text += Markup(". Note: ") + escape(d["warning"])
    elif kind == "retry_wait":
        text = Markup("Gmail did not take it this time")
        if isinstance(reason, str):
            text += Markup(" (") + escape(reason) + Markup(")")
        text += Markup("; it tries again")
        if d.get("retry_at"):
            text += Markup(" at ") + when(d["retry_at"])
    elif kind == "failed":
        text = Markup("Failed") + (Markup(": ") + escape(reason) if isinstance(reason, str)
                                   else Markup(""))
    elif kind == "cancelled":
        text = Markup("Cancelled")
        who = _who(d.get("by"))
        if who:
            text += Markup(" ") + escape(who)
        if isinstance(reason, str):
            text += Markup(": ") + escape(reason)
    elif kind == "opened":
        text = Markup("Opened by the recipient")
    elif kind == "machine_open":
        text = Markup("Image fetched by a mail app or proxy (not counted as an open)")
    elif kind == "clicked":
        text = Markup("Clicked ") + _link(d.get("url"))
    elif kind == "machine_click":
        text = Markup("Link checked by a scanner (not counted as a click): ") + _link(
            d.get("url"))
    elif kind == "replied":
        text = Markup("Replied") + (Markup(" by ") + escape(d["from"])
                                    if isinstance(d.get("from"), str) else Markup(""))
    elif kind == "bounced":
        text = Markup("Bounced") + (Markup(": ") + escape(reason) if isinstance(reason, str)
                                    else Markup(""))
    elif kind == "unsubscribed":
        text = Markup("The recipient unsubscribed")
    elif kind == "crashed":
        text = Markup("A worker stopped while preparing it; it was picked up again")
    elif kind == "amp_form":
        text = Markup("The recipient answered the form in the message")
    else:
        text = escape(kind.replace("_", " ").capitalize())
    return text


def _link(url) -> Markup:
    return Markup("<code>{}</code>").format(url) if isinstance(url, str) else Markup("a link")


def tone(event: dict) -> str:
    """good, bad, warn or '' (the timeline dot's colour)."""
    return _TONES.get(event.get("type", ""), "")
