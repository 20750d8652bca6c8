"""Signed links in sent mail (open pixel, click redirect, unsubscribe, AMP data), and the
decoration that puts them in a message.

Every link carries an HMAC-signed token (itsdangerous), so a tampered link matches nothing
(404) and the click redirect only goes where the message itself linked: no open redirect.
What happens when a link is used is `scheduler.delivery.tracking`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import html as html_lib
import json
import re
from dataclasses import dataclass
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

from scheduler.content import live_images
from scheduler.errors import TemplateError

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.I)



class Links:
    """Makes and reads the signed tokens of one deployment (keyed by its secret key)."""

    def __init__(self, secret_key: str, public_url: str):
        key = hashlib.sha256(b"mailrelease-links:" + secret_key.encode()).hexdigest()
        self.public_url = public_url.rstrip("/")
        self._open = URLSafeSerializer(key, salt="open")
        self._click = URLSafeSerializer(key, salt="click")
        self._unsub = URLSafeSerializer(key, salt="unsubscribe")
        self._amp = URLSafeSerializer(key, salt="amp")
        self._live_image = URLSafeSerializer(key, salt="live-image")
        self._preview = URLSafeTimedSerializer(key, salt="live-image-preview")

    def open_url(self, message_id: str) -> str:
        return f"{self.public_url}/t/o/{self._open.dumps(message_id)}.gif"

    def click_url(self, message_id: str, url: str) -> str:
        return f"{self.public_url}/t/c/{self._click.dumps([message_id, url])}"

    def unsubscribe_url(self, message_id: str) -> str:
        return f"{self.public_url}/u/{self._unsub.dumps(message_id)}"

    def live_url(self, message_id: str, source: str) -> str:
        return f"{self.public_url}/amp/{self._amp.dumps([message_id, source])}"

    def live_image_url(self, message_id: str, spec: dict) -> str:
        """A live image of a sent message: the message and the image's options, signed."""
        return (f"{self.public_url}/li/{self._live_image.dumps([message_id, spec])}."
                f"{live_images.extension(spec)}")

    def live_image_preview_url(self, spec: dict, at: str | None = None) -> str:
        """A live image drawn for the template editor's preview (no message, nothing
        counted; the token is good for PREVIEW_SECONDS), optionally as of time `at`."""
        url = (f"{self.public_url}/li/preview/{self._preview.dumps(spec)}."
               f"{live_images.extension(spec)}")
        return f"{url}?at={quote(at)}" if at else url

    def read_preview(self, token: str) -> tuple[dict, dt.datetime] | None:
        """A preview image's options and when the preview was made, or None (tampered,
        foreign, older than PREVIEW_SECONDS)."""
        try:
            spec, made = self._preview.loads(token, max_age=PREVIEW_SECONDS,
                                             return_timestamp=True)
        except BadSignature:
            return None
        return (spec, made) if isinstance(spec, dict) else None

    def read(self, kind: str, token: str):
        """The signed value, or None for a tampered or foreign token."""
        serializer = {"open": self._open, "click": self._click, "unsubscribe": self._unsub,
                      "amp": self._amp, "live_image": self._live_image}[kind]
        try:
            return serializer.loads(token)
        except BadSignature:
            return None


PREVIEW_SECONDS = 7 * 86_400
PREVIEW_DATA_BYTES = 2000



@dataclass(frozen=True)
class Tracked:
    """A message's HTML and text with tracking and unsubscribe added, and its headers."""

    html: str
    text: str
    headers: dict[str, str]



def decorate(html: str, text: str, *, message_id: str, sender: str, links: Links,
             track: bool, unsubscribe: bool, unsubscribe_url: str | None,
             list_id: str | None = None, automatic: bool = False) -> Tracked:
    """Add click redirects and an open pixel (if `track`), and unsubscribe headers and a
    visible link (if `unsubscribe`, i.e. not transactional).

    `sender` is the From address: the mailto unsubscribe goes there, not to the mailbox
    behind a "Send mail as" alias. `list_id` (RFC 2919) names the campaign or rule the
    message belongs to; `automatic` marks mail that a rule sent (RFC 3834), so that
    auto-responders do not answer it.
    """
    headers: dict[str, str] = {}
    if list_id:
        headers["List-Id"] = f"<{list_id}>"
    if automatic:
        headers["Auto-Submitted"] = "auto-generated"
    if unsubscribe and unsubscribe_url:
        headers["List-Unsubscribe"] = (f"<{unsubscribe_url}>, "
                                       f"<mailto:{sender}?subject=unsubscribe>")
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if unsubscribe_url not in text:
            text = text.rstrip("\n") + f"\n\nUnsubscribe: {unsubscribe_url}\n"
    if track:
        def rewrite(match: re.Match) -> str:
            target = html_lib.unescape(match.group(3))
            if target == unsubscribe_url:
                return match.group(0)
            return (f"{match.group(1)}{match.group(2)}{links.click_url(message_id, target)}"
                    f"{match.group(2)}")
        html = _HREF.sub(rewrite, html)
    snippets = []
    if unsubscribe and unsubscribe_url and unsubscribe_url not in html:
        snippets.append(f'<p style="font-size:12px;color:#6a737d">'
                        f'<a href="{unsubscribe_url}">Unsubscribe</a></p>')
    if track:
        snippets.append(open_pixel(links.open_url(message_id), html))
    # Past Gmail's clipping threshold the end of the HTML is hidden behind "[Message
    # clipped]": the unsubscribe link and the pixel then go first, where it is shown.
    clipped = len(html.encode()) + sum(map(len, snippets)) > CLIP_BYTES
    for snippet in snippets:
        html = (_after_body_start if clipped else _before_body_end)(html, snippet)
    return Tracked(html, text, headers)


# SpamAssassin's HTML_IMAGE_ONLY_04..32 rules add 0.6 to 2.8 points to HTML with an image
# and fewer than this many bytes of text: in such mail an <img> pixel would be the image.
IMAGE_ONLY_TEXT_BYTES = 3200
_TAG = re.compile(r"<[^>]*>|&[#\w]+;")


def open_pixel(url: str, html: str) -> str:
    """The open pixel for this HTML: an <img>, unless the message has no image of its own
    and little text, where it would make it "image-only" to spam filters; there it is a
    1x1 table's background (fetched like an image by Gmail, Apple Mail and Yahoo; Outlook
    for Windows ignores it, so opens there are not seen)."""
    if _IMG.search(html) or len(_TAG.sub("", html).encode()) > IMAGE_ONLY_TEXT_BYTES:
        return f'<img src="{url}" width="1" height="1" alt="" style="display:none">'
    return (f'<table role="presentation" width="1" height="1" cellpadding="0" '
            f'cellspacing="0" border="0" background="{url}"><tr><td height="1" '
            f'style="font-size:1px;line-height:1px">&#8203;</td></tr></table>')


def decorate_amp(amp: str, *, message_id: str, links: Links, track: bool,
                 unsubscribe_url: str | None) -> str:
    """The AMP part gets what the HTML part gets: a visible unsubscribe link, and (if
    `track`) click redirects and an open pixel (an <amp-img>). AMP takes https URLs only:
    on a deployment whose public URL is not https the part is left as it is."""
    if not links.public_url.startswith("https://"):
        return amp
    if track:
        def rewrite(match: re.Match) -> str:
            target = html_lib.unescape(match.group(3))
            if target == unsubscribe_url or not target.startswith("https://"):
                return match.group(0)
            return (f"{match.group(1)}{match.group(2)}{links.click_url(message_id, target)}"
                    f"{match.group(2)}")
        amp = _HREF.sub(rewrite, amp)
    if unsubscribe_url and unsubscribe_url.startswith("https://") and unsubscribe_url not in amp:
        amp = _before_body_end(amp, f'<p style="font-size:12px"><a href="{unsubscribe_url}">'
                                    f'Unsubscribe</a></p>')
    if track:
        # AMP infers layout="fixed" from the width and height; every word less keeps
        # the AMP part's vocabulary near the HTML's (SpamAssassin's MPART_ALT_DIFF_COUNT).
        amp = _before_body_end(amp, f'<amp-img src="{links.open_url(message_id)}" width="1" '
                                    f'height="1" alt=""></amp-img>')
    return amp


def _before_body_end(html: str, snippet: str) -> str:
    at = html.lower().rfind("</body>")
    return html + snippet if at < 0 else html[:at] + snippet + html[at:]


_BODY_START = re.compile(r"<body\b[^>]*>", re.I)


def _after_body_start(html: str, snippet: str) -> str:
    found = _BODY_START.search(html)
    return snippet + html if found is None else html[:found.end()] + snippet + html[found.end():]


# Gmail clips a message whose HTML is larger than about 102 KB.
CLIP_BYTES = 102_000
# What a tracked link adds besides its URL: the public URL, /t/c/, and the signed token
# (the message id and the URL compressed, base64, a signature); what the pixel and the
# unsubscribe paragraph add.
_TOKEN_OVERHEAD = 60
_SNIPPETS = 400


def tracked_size(html: str, public_url: str = "https://mailrelease.example") -> int:
    """About how many bytes the HTML has once its links are tracked (estimated without
    signing anything: this runs for every message of a campaign)."""
    size = len(html.encode()) + _SNIPPETS
    for match in _HREF.finditer(html):
        size += len(public_url) + _TOKEN_OVERHEAD + len(match.group(3)) // 3
    return size


def clip_warning(html: str) -> str | None:
    """A warning when the HTML, with its links tracked, is past Gmail's clipping threshold
    (at release the pixel and unsubscribe link then move to the top)."""
    size = tracked_size(html)
    if size <= CLIP_BYTES:
        return None
    return (f"the HTML is about {size / 1000:.0f} KB with tracked links: Gmail clips a "
            f"message past {CLIP_BYTES // 1000} KB and hides the rest behind \"[Message "
            f"clipped]\" (shorten it, or turn tracking off to save the redirect links)")


_ANCHOR = re.compile(r"""<a\b[^>]*?\bhref\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ALT = re.compile(r"\balt\s*=", re.I)
_ABSOLUTE = ("http://", "https://", "mailto:", "tel:", "#")


def message_warnings(html: str) -> list[str]:
    """What a mail client or Gmail will do badly with this HTML: clipping, links that are
    not absolute (they go nowhere from a mailbox), images without alt text (shown when
    images are blocked; image-only mail scores as spam)."""
    warnings = [w for w in (clip_warning(html),) if w]
    relative = [href for _, href in _ANCHOR.findall(html)
                if not href.strip().lower().startswith(_ABSOLUTE)]
    if relative:
        shown = ", ".join(repr(h[:60]) for h in relative[:3])
        warnings.append(f"{len(relative)} link{'s' if len(relative) > 1 else ''} not absolute "
                        f"(a link in mail needs https://…): {shown}")
    bare = sum(1 for tag in _IMG.findall(html) if not _ALT.search(tag))
    if bare:
        warnings.append(f"{bare} image{'s' if bare > 1 else ''} without alt text (shown when "
                        f"images are blocked)")
    return warnings


def live_url_function(links: Links | None, message_id: str | None, sources: list | None):
    """live_url('NAME') for a template: the signed URL serving source NAME at open time.

    Without `links` (checking a template before anything is sent) it returns a stand-in.
    A name that is not one of the template's sources is a template error.
    """
    names = {s["name"] for s in sources or ()}

    def live_url(name: str) -> str:
        if name not in names:

            raise TemplateError(f"live_url('{name}'): the template has no source named "
                                f"'{name}'", field="amp")
        if links is None or message_id is None:
            return f"https://live.invalid/{name}"
        return links.live_url(message_id, name)
    return live_url



def stand_in_links(sources: list | None, data: dict | None = None,
                   links: Links | None = None, at: str | None = None) -> dict:
    """What unsubscribe_url, live_url and live_image render as before a release: with
    `links` (a preview) live images are drawn as of now (or time `at`), without them
    (checking a template) they are stand-ins."""
    def image_url(spec: dict) -> str:
        if links is None:
            return f"https://live-image.invalid/{live_images.extension(spec)}"
        if spec["k"] == "text":
            # The preview fetches the source itself: its definition and (if small) the
            # data its URL is made from travel signed with the image.
            spec = {**spec, "sources": [s for s in sources or ()
                                        if s["name"] == spec["source"]]}
            if len(json.dumps(data or {}, default=str)) <= PREVIEW_DATA_BYTES:
                spec["data"] = data or {}
        return links.live_image_preview_url(spec, at)
    return {"unsubscribe_url": "https://unsubscribe.invalid/",
            "live_url": live_url_function(None, None, sources),
            "live_image": live_images.live_image_function(image_url, data or {}, sources)}


def message_links(links: Links, message_id: str, data: dict, sources: list | None,
                  transactional: bool) -> dict:
    """The signed links a message's template may use at its release: unsubscribe_url,
    live_url() in AMP, live_image() in HTML."""
    return {"live_url": live_url_function(links, message_id, sources),
            "live_image": live_images.live_image_function(
                lambda spec: links.live_image_url(message_id, spec), data, sources),
            "unsubscribe_url": "" if transactional else links.unsubscribe_url(message_id)}
