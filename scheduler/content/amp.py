"""A pre-flight check of AMP for Email parts: what Gmail would refuse is refused at save.

Not the official validator (that is JavaScript; the tests compare the two on a corpus): a
structural check of the AMP4EMAIL rules that templates break in practice, each error
naming its line.
"""
from __future__ import annotations

from html.parser import HTMLParser

from jinja2 import ChainableUndefined

from scheduler.content import budget
from scheduler.content import sources as content
from scheduler.content.budget import BudgetedEnvironment
from scheduler.content.links import stand_in_links
from scheduler.errors import InvalidInput

MAX_CSS_BYTES = 50_000
MAX_MARKUP_BYTES = 200_000
RUNTIME = "https://cdn.ampproject.org/v0.js"
# Components AMP for Email allows, and whether they need their own script.
EMAIL_COMPONENTS = {
    "amp-img": False, "amp-layout": False, "amp-accordion": True, "amp-anim": True,
    "amp-autocomplete": True, "amp-base-carousel": True, "amp-bind": True,
    "amp-carousel": True, "amp-date-display": True, "amp-date-picker": True,
    "amp-fit-text": True, "amp-form": True, "amp-image-lightbox": True, "amp-inputmask": True,
    "amp-lightbox": True, "amp-list": True, "amp-selector": True, "amp-sidebar": True,
    "amp-state": "amp-bind", "amp-stream-gallery": True, "amp-timeago": True,
}
TEMPLATES = {"amp-mustache"}
FORBIDDEN_TAGS = {"img": "use <amp-img>", "iframe": "", "frame": "", "frameset": "",
                  "object": "", "param": "", "applet": "", "embed": "", "video": "",
                  "audio": "", "base": "", "link": "", "canvas": "", "svg": "",
                  "noscript": "", "picture": "", "portal": "", "math": ""}
FORBIDDEN_INPUTS = {"file", "image", "password", "button"}

_CHECK_ENV = BudgetedEnvironment(autoescape=True, undefined=ChainableUndefined)


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.errors: list[tuple[int, str]] = []
        self.html_attrs: dict | None = None
        self.runtime = False
        self.boilerplate = False
        self.meta_charset = False
        self.doctype = False
        self.scripts: dict[str, int] = {}  # custom element/template → line
        self.used: dict[str, int] = {}  # amp-* element or template type → first line
        self.css_bytes = 0
        self._in: str | None = None
        self._style_text: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append((self.getpos()[0], message))

    def handle_decl(self, decl):
        if decl.strip().lower() == "doctype html":
            self.doctype = True

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v or "") for k, v in attrs}
        line = self.getpos()[0]
        if tag == "html":
            self.html_attrs = a
        elif tag == "meta":
            if a.get("charset", "").lower() == "utf-8":
                self.meta_charset = True
            elif "http-equiv" in a:
                self.error("<meta http-equiv> is not allowed")
        elif tag == "script":
            self._script(a)
        elif tag == "style":
            self._in = ("boilerplate" if "amp4email-boilerplate" in a
                        else "custom" if "amp-custom" in a else "other")
            if self._in == "other":
                self.error("<style> needs amp-custom (one) or amp4email-boilerplate")
            self._style_text = []
        elif tag in FORBIDDEN_TAGS:
            hint = FORBIDDEN_TAGS[tag]
            self.error(f"<{tag}> is not allowed in AMP for Email" + (f": {hint}" if hint else ""))
        elif tag.startswith("amp-"):
            self.used.setdefault(tag, line)
            if tag == "amp-list":
                self._https(a.get("src", ""), "amp-list src")
            elif tag in ("amp-img", "amp-anim") and "{{" not in a.get("src", ""):
                # A value from the data is checked once rendered, at release.
                self._https(a.get("src", ""), f"<{tag}> src")
        elif tag == "template":
            self.used.setdefault(a.get("type", "template"), line)
        elif tag == "form":
            if "action" in a:
                self.error("<form action> is not allowed: use action-xhr")
            self._https(a.get("action-xhr", ""), "form action-xhr")
            self.used.setdefault("amp-form", line)
        elif tag == "input" and a.get("type", "").lower() in FORBIDDEN_INPUTS:
            self.error(f'<input type="{a["type"]}"> is not allowed')
        for name, value in a.items():
            if name.startswith("on"):
                self.error(f"the {name} attribute is not allowed (use on=\"...\" actions)")
            if name in ("href", "src") and value.strip().lower().startswith("javascript:"):
                self.error(f"a javascript: URL in {name} is not allowed")

    def _https(self, url: str, what: str) -> None:
        if url and not url.startswith("https://"):
            self.error(f"{what} must be an https URL (or {{{{ live_url('NAME') }}}}): {url}")

    def _script(self, a: dict) -> None:
        src = a.get("src", "")
        element = a.get("custom-element") or a.get("custom-template")
        if src == RUNTIME and not element:
            self.runtime = True
        elif element and src.startswith("https://cdn.ampproject.org/v0/"):
            known = element in EMAIL_COMPONENTS or element in TEMPLATES
            if not known:
                self.error(f"the component {element} is not allowed in AMP for Email")
            self.scripts[element] = self.getpos()[0]
        else:
            self.error("custom <script> is not allowed: only the AMP runtime and component "
                       "scripts from https://cdn.ampproject.org")
        if "async" not in a:
            self.error("AMP scripts must be async")
        self._in = "script"

    def handle_endtag(self, tag):
        if tag == "style" and self._in in ("boilerplate", "custom"):
            text = "".join(self._style_text)
            if self._in == "boilerplate":
                if "".join(text.split()) == "body{visibility:hidden}":
                    self.boilerplate = True
                else:
                    self.error("the amp4email-boilerplate style must be "
                               "body{visibility:hidden}")
            else:
                self.css_bytes += len(text.encode("utf-8"))
                if "!important" in text:
                    self.error("!important is not allowed in AMP CSS")
        if tag in ("style", "script"):
            self._in = None

    def handle_data(self, data):
        if self._in in ("boilerplate", "custom", "other"):
            self._style_text.append(data)
        elif self._in == "script" and data.strip():
            self.error("inline script is not allowed")


def check_amp(source: str, sources: list | None = None) -> None:
    """InvalidInput (422, field amp) naming the first problems and their lines."""
    try:
        rendered = budget.render(_CHECK_ENV.from_string(source), {
            **stand_in_links(sources), **content.stand_ins(sources)})
    except Exception:  # noqa: BLE001 - compile errors are reported by check_template
        rendered = source
    errors = find_problems(rendered)
    if errors:
        listed = "; ".join(f"line {line}: {text}" for line, text in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InvalidInput(f"amp: Gmail would refuse this AMP part: {listed}{more}",
                           field="amp", code="invalid_amp")


def find_problems(html: str) -> list[tuple[int, str]]:
    """Every problem found, as (line, text)."""
    checker = _Checker()
    checker.feed(html)
    checker.close()
    errors = checker.errors
    if len(html.encode("utf-8")) > MAX_MARKUP_BYTES:
        errors.append((1, f"the AMP part is larger than {MAX_MARKUP_BYTES:,} bytes"))
    if checker.css_bytes > MAX_CSS_BYTES:
        errors.append((1, f"<style amp-custom> is larger than {MAX_CSS_BYTES:,} bytes"))
    if not checker.doctype:
        errors.append((1, "no <!doctype html>"))
    attrs = checker.html_attrs
    if attrs is None:
        errors.append((1, "no <html ⚡4email> element"))
    else:
        if "⚡4email" not in attrs and "amp4email" not in attrs:
            errors.append((1, "<html> needs the ⚡4email (or amp4email) attribute"))
        if "data-css-strict" not in attrs:
            errors.append((1, "<html> needs the data-css-strict attribute"))
    if not checker.meta_charset:
        errors.append((1, 'no <meta charset="utf-8">'))
    if not checker.runtime:
        errors.append((1, f'no AMP runtime <script async src="{RUNTIME}">'))
    if not checker.boilerplate:
        errors.append((1, "no <style amp4email-boilerplate>body{visibility:hidden}</style>"))
    for name, line in checker.used.items():
        needs = EMAIL_COMPONENTS.get(name)
        if name.startswith("amp-") and name not in EMAIL_COMPONENTS and name not in TEMPLATES:
            errors.append((line, f"<{name}> is not allowed in AMP for Email"))
        elif needs is True and name not in checker.scripts:
            errors.append((line, f"<{name}> needs its script (custom-element=\"{name}\")"))
        elif isinstance(needs, str) and needs not in checker.scripts:
            errors.append((line, f"<{name}> needs the {needs} script"))
        elif name in TEMPLATES and name not in checker.scripts:
            errors.append((line, f"a {name} template needs its script "
                                 f"(custom-template=\"{name}\")"))
    return sorted(errors)
