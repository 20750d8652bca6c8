"""Sandboxed Jinja2 rendering of a message's parts with the recipient's data."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import html2text
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from scheduler.errors import MissingData, TemplateError

# StrictUndefined: a variable with no value and no `default` raises instead of printing ''.
_HTML_ENV = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
_PLAIN_ENV = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


@dataclass(frozen=True)
class RenderedParts:
    """What the recipient reads."""

    subject: str
    html: str
    text: str


def _env(part: str) -> SandboxedEnvironment:
    return _HTML_ENV if part in ("html", "amp") else _PLAIN_ENV


@lru_cache(maxsize=1024)
def _compile(part: str, source: str):
    return _env(part).from_string(source)


def check_template(part: str, source: str) -> None:
    """Raise TemplateError naming the part and line when `source` does not compile."""
    try:
        _compile(part, source)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), field=part, line=exc.lineno) from exc


def render_part(part: str, source: str, data: dict) -> str:
    """Render one part; MissingData names a variable that has no value and no fallback."""
    template = _compile(part, source)
    try:
        return template.render(data)
    except UndefinedError as exc:
        match = _UNDEFINED_NAME.search(str(exc))
        raise MissingData(match.group(1) if match else str(exc), part) from exc
    except SecurityError as exc:
        raise TemplateError(f"not allowed in a template: {exc}", field=part) from exc


def html_to_text(html: str) -> str:
    """A readable plain-text alternative made from the HTML part."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.unicode_snob = True
    return converter.handle(html).strip() + "\n"


def render_message(subject: str, html: str, text: str | None, data: dict) -> RenderedParts:
    """Render subject, HTML and text; the text part is derived from the HTML when absent."""
    rendered_subject = " ".join(render_part("subject", subject, data).split())
    rendered_html = render_part("html", html, data)
    rendered_text = render_part("text", text, data) if text else html_to_text(rendered_html)
    return RenderedParts(rendered_subject, rendered_html, rendered_text)
