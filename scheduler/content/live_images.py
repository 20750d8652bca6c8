"""Open-time images in templates: `{{ live_image('countdown', until=...) }}` and
`{{ live_image('text', source=...) }}` write an <img> whose signed, per-message URL is drawn
when the image is fetched (`scheduler.content.drawing`).

The template's options are checked and resolved when the message is rendered (a bad option
is a template error naming the option, a field with no value holds the message like any
missing variable) and travel signed in the URL: the image needs no table, and a URL that
was changed reads as nothing (the neutral "expired" image, never an error: Gmail's image
proxy caches errors).

    countdown  until=ISO 8601 time, or the name of a data or contact field holding one
               (a time without a zone is in the recipient's `timezone`, else UTC);
               or hours_after_send=N. units='dhms'|'hms'|'ms', labels=True,
               expired='text shown after the end'.
    text       source='NAME' (one of the template's sources, fetched again at open),
               value='dotted.path' into its JSON, label='...', fallback='...'.
    both       width, height, color, background, label_color, font ('sans', 'mono',
               'serif'), locale (digits and labels), alt.
"""
from __future__ import annotations

import datetime as dt
import html as html_lib
import math

from jinja2 import Environment, TemplateSyntaxError, Undefined, nodes
from markupsafe import Markup

from scheduler.content import drawing
from scheduler.errors import MissingData, TemplateError
from scheduler.timing.release_at import zone_or_utc

KINDS = ("countdown", "text")
_COMMON = {"width", "height", "color", "background", "label_color", "font", "locale", "alt"}
_OPTIONS = {"countdown": _COMMON | {"until", "hours_after_send", "units", "labels",
                                    "expired"},
            "text": _COMMON | {"source", "value", "label", "fallback"}}
MAX_HOURS_AFTER_SEND = 24 * 366
DEFAULT_EXPIRED = "Expired"


def _problem(message: str) -> TemplateError:
    return TemplateError(f"live_image(): {message}", field="html")


def _lookup(data: dict, path: str):
    value: object = data
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _zone(data: dict) -> dt.tzinfo:
    return zone_or_utc(data.get("timezone") or _lookup(data, "contact.timezone"))


def _as_time(value, data: dict) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=_zone(data))


def _until(options: dict, data: dict) -> dict:
    until, after = options.get("until"), options.get("hours_after_send")
    if (until is None) == (after is None):
        raise _problem("a countdown takes until= (a time or a field) or hours_after_send=")
    if after is not None:
        if isinstance(after, bool) or not isinstance(after, (int, float)) or not (
                0 < after <= MAX_HOURS_AFTER_SEND) or math.isnan(after):
            raise _problem(f"hours_after_send must be a number of hours, 0 to "
                           f"{MAX_HOURS_AFTER_SEND}")
        return {"a": round(after * 3600)}
    if not isinstance(until, (str, dt.datetime)) or not str(until).strip():
        raise _problem("until must be an ISO 8601 time or the name of a field")
    moment = _as_time(until, data)
    if moment is None and isinstance(until, str) and until.strip()[:1].isdigit():
        raise _problem(f"until={until!r} is not an ISO 8601 time (like "
                       f"2026-12-24T18:00:00+01:00)")
    if moment is None:
        field = str(until).strip()
        value = _lookup(data, field)
        if value is None or value == "":
            raise MissingData(field, "html")
        moment = _as_time(value, data)
        if moment is None:
            raise _problem(f"field {field!r} holds {str(value)[:40]!r}, not an ISO 8601 "
                           f"time")
    return {"u": int(moment.timestamp())}


def _style(options: dict) -> dict:
    out: dict = {}
    for name, low, high in (("width", drawing.MIN_WIDTH, drawing.MAX_WIDTH),
                            ("height", drawing.MIN_HEIGHT, drawing.MAX_HEIGHT)):
        if name in options:
            value = options[name]
            if isinstance(value, bool) or not isinstance(value, int) or not (
                    low <= value <= high):
                raise _problem(f"{name} must be a whole number of pixels, {low} to {high}")
            out[name] = value
    for name in ("color", "background", "label_color"):
        if name in options:
            if drawing.parse_color(options[name]) is None:
                raise _problem(f"{name} must be a colour like #1a73e8")
            out[name] = str(options[name]).strip()
    if "font" in options:
        if options["font"] not in drawing.FONTS:
            raise _problem(f"font must be one of {', '.join(drawing.FONTS)}")
        out["font"] = options["font"]
    if "locale" in options:
        locale = drawing.known_locale(options["locale"])
        if locale is None:
            raise _problem(f"locale {str(options['locale'])[:20]!r} is not a known locale "
                           f"(like en, de, fr_CA, ar_EG)")
        out["locale"] = locale
    return out


def _text_option(options: dict, name: str) -> str | None:
    if name not in options or options[name] is None:
        return None
    text = drawing.clean_text(options[name])
    if not text and name != "fallback":
        raise _problem(f"{name} must be some text")
    return text


def spec_of(kind: str, options: dict, data: dict, sources: list | None) -> dict:
    """The checked, resolved options of one live image: what its signed URL carries."""
    for value in (kind, *options.values()):
        if isinstance(value, Undefined):  # a variable with no value, passed as an option
            raise MissingData(value._undefined_name or "live_image", "html")
    if kind not in KINDS:
        raise _problem(f"the kind must be one of {', '.join(KINDS)}, not {str(kind)[:30]!r}")
    unknown = sorted(set(options) - _OPTIONS[kind])
    if unknown:
        raise _problem(f"{kind} has no option {unknown[0]!r} (it takes "
                       f"{', '.join(sorted(_OPTIONS[kind]))})")
    spec: dict = {"k": kind, **_style(options)}
    if kind == "countdown":
        spec.update(_until(options, data))
        units = options.get("units", "dhms")
        if units not in ("dhms", "hms", "ms"):
            raise _problem("units must be 'dhms', 'hms' or 'ms'")
        spec["units"] = units
        spec["labels"] = bool(options.get("labels", True))
        spec["expired"] = _text_option(options, "expired") or DEFAULT_EXPIRED
    else:
        names = {s["name"] for s in sources or ()}
        source = options.get("source")
        if source not in names:
            raise _problem(f"source={str(source)[:40]!r} is not one of the template's "
                           f"sources ({', '.join(sorted(names)) or 'it has none'})")
        spec["source"] = source
        value = options.get("value")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise _problem("value must be a dotted path into the source's JSON")
        if value:
            spec["value"] = value.strip()
        for name in ("label", "fallback"):
            text = _text_option(options, name)
            if text is not None:
                spec[name] = text
    alt = _text_option(options, "alt")
    spec["alt"] = alt or (spec.get("label") or "Live content" if kind == "text"
                          else "Time left")
    return spec


# What a call's options stand for when they are variables, to check the rest at save time.
_STAND_INS = {"until": "2000-01-01T00:00:00+00:00", "hours_after_send": 1}
_PARSER = Environment()


def check_calls(html: str, sources: list | None) -> None:
    """Check each live_image() call a template writes with literal options (a saved
    template, before any data): a bad option is a 422 naming the HTML's line. Options
    given as variables are checked when a message is rendered."""
    try:
        tree = _PARSER.parse(html)
    except TemplateSyntaxError:
        return  # reported by the template check, with its line
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == "live_image"):
            continue
        if not (call.args and isinstance(call.args[0], nodes.Const)):
            continue
        options = {}
        for keyword in call.kwargs:
            if isinstance(keyword.value, nodes.Const):
                options[keyword.key] = keyword.value.value
            elif keyword.key in _STAND_INS:
                options[keyword.key] = _STAND_INS[keyword.key]
            elif keyword.key == "source" and sources:
                options["source"] = sources[0]["name"]
        try:
            spec_of(call.args[0].value, options, {}, sources)
        except MissingData:
            pass  # a field's value: known when a message is made
        except TemplateError as exc:
            raise TemplateError(exc.detail, field="html", line=call.lineno) from None


def style_of(spec: dict) -> drawing.Style:
    """The drawing style a spec names (defaults for what it leaves out)."""
    base = drawing.Style()
    colors = {name: drawing.parse_color(spec[name]) for name in ("color", "background",
                                                                  "label_color")
              if name in spec}
    return drawing.Style(width=spec.get("width", base.width),
                         height=spec.get("height", base.height),
                         color=colors.get("color") or base.color,
                         background=colors.get("background") or base.background,
                         label_color=colors.get("label_color") or base.label_color,
                         font=spec.get("font", base.font), locale=spec.get("locale", base.locale))


def image_tag(url: str, spec: dict) -> Markup:
    """The <img> a template writes: sized, with alt text, blocked-image friendly."""
    style = style_of(spec)
    return Markup(f'<img src="{html_lib.escape(url)}" width="{style.width}" '
                  f'height="{style.height}" alt="{html_lib.escape(spec["alt"])}" '
                  f'style="display:block;border:0;max-width:100%;height:auto">')


def extension(spec: dict) -> str:
    """The file type a live image is served as: an animated GIF, or a PNG card."""
    return "gif" if spec["k"] == "countdown" else "png"


def live_image_function(url_for, data: dict, sources: list | None):
    """live_image(kind, **options) for a template; `url_for(spec)` signs the image's URL
    (a message's at release, a preview's in the editor, a stand-in when checking)."""

    def live_image(kind: str = "", **options) -> Markup:
        spec = spec_of(kind, options, data, sources)
        return image_tag(url_for(spec), spec)
    return live_image


def as_of(value: str | None) -> dt.datetime | None:
    """A preview's "as of" time: ISO 8601, UTC when it names no zone; None if unreadable."""
    try:
        moment = dt.datetime.fromisoformat((value or "").strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def deadline(spec: dict, sent_at: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """When a countdown ends: its fixed time, or its hours after the message was sent (a
    message not sent yet counts from now)."""
    if "u" in spec:
        return dt.datetime.fromtimestamp(spec["u"], dt.UTC)
    return (sent_at or now) + dt.timedelta(seconds=spec.get("a", 0))


def countdown_image(spec: dict, sent_at: dt.datetime | None, now: dt.datetime,
                    cache: drawing.RenderCache) -> bytes:
    """The countdown as of `now` (shared with every fetch of the same image this second)."""
    style = style_of(spec)
    remaining = math.floor((deadline(spec, sent_at, now) - now).total_seconds())
    units, labels, expired = spec.get("units", "dhms"), spec.get("labels", True), spec.get(
        "expired", DEFAULT_EXPIRED)
    if remaining <= 0:
        return cache.get(("expired", style, expired),
                         lambda: drawing.expired_gif(style, expired))
    return cache.get(("countdown", style, units, labels, expired, remaining),
                     lambda: drawing.countdown_gif(style, remaining, units=units,
                                                   labels=labels, expired=expired))


def text_value(spec: dict, value) -> str:
    """What a text card shows for the source's JSON: the value at its path, numbers in the
    locale's way, the fallback (or a dash) when there is none."""
    if "value" in spec:
        value = _lookup(value, spec["value"]) if isinstance(value, dict) else None
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return spec.get("fallback") or "—"
    if isinstance(value, (int, float)):
        from babel.numbers import format_decimal
        text = format_decimal(value, locale=spec.get("locale", "en"))
        return drawing.localized_digits(text, style_of(spec))
    return drawing.clean_text(value) or spec.get("fallback") or "—"


def text_image(spec: dict, value, cache: drawing.RenderCache) -> bytes:
    """The text card for the source's current JSON (shared while it is the same)."""
    style, shown = style_of(spec), text_value(spec, value)
    label = spec.get("label")
    return cache.get(("text", style, label, shown),
                     lambda: drawing.text_card_png(style, shown, label))


def neutral_image(cache: drawing.RenderCache) -> bytes:
    """For a URL that is not (or no longer) one of ours: an "expired" image, no detail."""
    style = drawing.Style()
    return cache.get(("expired", style, DEFAULT_EXPIRED),
                     lambda: drawing.expired_gif(style, DEFAULT_EXPIRED))
