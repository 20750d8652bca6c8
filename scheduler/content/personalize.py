"""Sandboxed Jinja2 rendering of a message's parts with the recipient's data."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import css_inline
import html2text
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SecurityError

from scheduler.content import budget
from scheduler.content.budget import BudgetedEnvironment
from scheduler.errors import MissingData, RenderError, TemplateError

# StrictUndefined: a variable with no value and no `default` raises instead of printing ''.
# Sandboxed, and with a budget per render (output size, steps, depth, time: budget.py).
_HTML_ENV = BudgetedEnvironment(autoescape=True, undefined=StrictUndefined)
_PLAIN_ENV = BudgetedEnvironment(autoescape=False, undefined=StrictUndefined)
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
_MISSING_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")


# Styles from <style> blocks go into style="" attributes, as many email clients drop
# <style>; at-rules (@media, @font-face), which no attribute can hold, stay in a <style>
# for the clients that read it (Gmail does). Never fetch a stylesheet at send time: a
# template must not reach the network.
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False,
                                 keep_at_rules=True)


@dataclass(frozen=True)
class RenderedParts:
    """What the recipient reads."""

    subject: str
    html: str
    text: str
    amp: str | None = None


def _env(part: str) -> BudgetedEnvironment:
    return _HTML_ENV if part in ("html", "amp") else _PLAIN_ENV


def _compile(part: str, source: str):
    if not isinstance(source, str):  # a form or body without this part
        raise TemplateError("is missing", field=part)
    return _compiled(part, source)


@lru_cache(maxsize=1024)
def _compiled(part: str, source: str):
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
        return budget.render(template, data)
    except budget.OverBudget as exc:
        raise RenderError(f"the template goes over its budget: {exc}", field=part,
                          line=_template_line(exc)) from exc
    except UndefinedError as exc:
        text = str(exc)
        if match := _UNDEFINED_NAME.search(text):
            raise MissingData(match.group(1), part) from exc
        if match := _MISSING_ATTRIBUTE.search(text):
            raise MissingData(match.group(1), part, attribute=True) from exc
        raise MissingData(text, part) from exc
    except SecurityError as exc:
        raise TemplateError(f"not allowed in a template: {exc}", field=part) from exc
    except TemplateError as exc:
        if exc.line is not None:
            raise
        # A template function said no (a live_image option, say): add the line it is on.
        raise TemplateError(exc.detail, field=exc.field or part,
                            line=_template_line(exc)) from exc
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
        # The template itself fails with this data ({{ 1/0 }}, a huge range...): say where.
        raise RenderError(f"{type(exc).__name__}: {exc}", field=part,
                          line=_template_line(exc)) from exc


def _template_line(exc: BaseException) -> int | None:
    """The template line an error was raised on (Jinja maps its frames to the source)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def variables(part: str, source: str) -> set[str]:
    """The top-level names a template reads (e.g. a Gmail draft's placeholders)."""
    env = _env(part)
    return set(meta.find_undeclared_variables(env.parse(source)))


def inline_css(html: str) -> str:
    """Move <style> rules into style attributes (no-op for HTML without a <style>)."""
    if "<style" not in html.lower():
        return html
    try:
        return _INLINER.inline(html)
    except ValueError:  # CSS it cannot parse: send the HTML as written
        return html


_CELL_END = re.compile(r"(</t[dh]\s*>)", re.I)
_REFERENCE_LINK = re.compile(r"\[([^\]]*)\]\[(\d+)\]")
_REFERENCE = re.compile(r"^ {3}\[(\d+)\]: (\S+)$", re.M)
_AUTOMATIC_LINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_HEADING = re.compile(r"^#{1,6} +", re.M)


def html_to_text(html: str) -> str:
    """A readable plain-text alternative made from the HTML part: not Markdown. Lines of
    at most 78 columns (a long URL excepted), links as numbered references listed at the
    end, table cells side by side, no emphasis marks or heading hashes."""
    converter = html2text.HTML2Text()
    converter.body_width = 78
    converter.ignore_images = True
    converter.unicode_snob = True
    converter.ignore_emphasis = True
    converter.inline_links = False
    converter.ignore_tables = True
    converter.ul_item_mark = "-"
    converter.wrap_links = False
    converter.skip_internal_links = True
    # Cells of a row would run together: a space after each keeps them apart.
    text = converter.handle(_CELL_END.sub(r"&nbsp;&nbsp;\1", html))
    text = _REFERENCE_LINK.sub(r"\1 [\2]", text)
    text = _REFERENCE.sub(r"[\1] \2", text)
    text = _AUTOMATIC_LINK.sub(r"\1", _HEADING.sub("", text))
    lines = [line.rstrip() for line in text.replace("\u00a0", " ").splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def render_message(subject: str, html: str, text: str | None, data: dict,
                   amp: str | None = None) -> RenderedParts:
    """Render every part; the text part is derived from the HTML when absent.

    The HTML has its CSS inlined; the AMP part is left as written (AMP allows one
    <style amp-custom> and no style attributes).
    """
    rendered_subject = " ".join(render_part("subject", subject, data).split())
    rendered_html = render_part("html", html, data)
    rendered_text = render_part("text", text, data) if text else html_to_text(rendered_html)
    rendered_amp = render_part("amp", amp, data) if amp else None
    return RenderedParts(rendered_subject, inline_css(rendered_html), rendered_text,
                         rendered_amp)
