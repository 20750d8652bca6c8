"""Open-time images drawn with Pillow: a countdown as an animated GIF, a text card as a PNG,
and the "expired" image shown after a countdown's end (and for any link that is not ours).

Cheap by construction: every image is drawn in palette mode with a prepared palette (the
background, and a 16-step ramp from the background to each ink colour), so nothing is
quantized; a countdown's background (its labels and separators) is drawn once per style,
and each number is a tile drawn once per style and reused by every frame and every render.
GIF frames after the first are written as the region that changed (Pillow compares frames),
so a minute of seconds costs a few kilobytes. Identical renders (the same image at the same
second) are shared through `RenderCache`, with one render in flight per key.
"""
from __future__ import annotations

import io
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.units import get_unit_name
from PIL import Image, ImageDraw, ImageFont
from prometheus_client import Counter

RENDERS = Counter("mailrelease_live_image_renders", "Live images drawn (each shared by every "
                  "fetch of the same image in the same second)", ["kind"])
FONT_DIR = Path(__file__).with_name("fonts")
# DejaVu (Bitstream Vera licence, fonts/LICENSE-DejaVu.txt): Latin, Greek, Cyrillic,
# Arabic and Devanagari digits among others.
FONTS = {"sans": "DejaVuSans-Bold.ttf", "mono": "DejaVuSansMono-Bold.ttf",
         "serif": "DejaVuSerif-Bold.ttf"}
FRAMES = 60
MIN_WIDTH, MAX_WIDTH = 80, 1200
MIN_HEIGHT, MAX_HEIGHT = 30, 400
MAX_TEXT = 80
# A render stops adding frames past this: the image then covers fewer seconds, but it is
# answered (clients show the last frame, which is still the right time when it was drawn).
RENDER_BUDGET_SECONDS = 0.5
_RAMP = 16
# The first digit of each numbering system (CLDR numberingSystems) the bundled fonts draw.
_ZEROS = {"latn": "0", "arab": "\u0660", "arabext": "\u06f0", "deva": "\u0966"}
_WHERE = [0] + [255] * 255
UNITS = {"d": "day", "h": "hour", "m": "minute", "s": "second"}


@dataclass(frozen=True)
class Style:
    """How an image looks: size, colours (RGB), font and locale (digits and labels)."""

    width: int = 600
    height: int = 120
    color: tuple[int, int, int] = (17, 17, 17)
    background: tuple[int, int, int] = (255, 255, 255)
    label_color: tuple[int, int, int] = (106, 115, 125)
    font: str = "sans"
    locale: str = "en"


def parse_color(value: str) -> tuple[int, int, int] | None:
    """#rgb or #rrggbb as RGB, or None."""
    text = value.strip().lstrip("#") if isinstance(value, str) else ""
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if len(text) != 6:
        return None
    try:
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    except ValueError:
        return None


def known_locale(value: str) -> str | None:
    """The locale's canonical name (de, pt_BR, ar_EG), or None when Babel does not know it."""
    try:
        return str(Locale.parse(str(value).replace("-", "_")))
    except (ValueError, TypeError, UnknownLocaleError):
        return None


def clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """Text fit to draw: control and format characters out, whitespace single, bounded."""
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in str(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


@lru_cache(maxsize=64)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / FONTS.get(name, FONTS["sans"])), max(size, 6))


@lru_cache(maxsize=64)
def _digits(locale: str, font: str) -> str:
    """The locale's ten digits, or ASCII ones when the font has no glyphs for them."""
    try:
        system = Locale.parse(locale).default_numbering_system
    except (ValueError, UnknownLocaleError):
        system = "latn"
    zero = _ZEROS.get(system, "0")
    face = _font(font, 24)
    missing = bytes(face.getmask("\U000e0fff"))  # .notdef: a character no font has
    if zero != "0" and bytes(face.getmask(zero)) == missing:
        zero = "0"
    return "".join(chr(ord(zero) + i) for i in range(10))


def localized_digits(text: str, style: Style) -> str:
    """ASCII digits in `text` written in the style's locale's digits."""
    digits = _digits(style.locale, style.font)
    return text.translate({ord("0") + i: digits[i] for i in range(10)})


@lru_cache(maxsize=256)
def _label(unit: str, locale: str, short: bool) -> str:
    try:
        name = get_unit_name(f"duration-{UNITS[unit]}", length="short" if short else "long",
                             locale=locale)
    except (ValueError, UnknownLocaleError):
        name = None
    return name or UNITS[unit] + "s"


class _Canvas:
    """A style's palette: index 0 the background, then a ramp to the ink, one to the
    labels' colour."""

    def __init__(self, style: Style):
        self.style = style
        palette = list(style.background)
        for ink in (style.color, style.label_color):
            for step in range(1, _RAMP + 1):
                palette += [round(b + (i - b) * step / _RAMP)
                            for b, i in zip(style.background, ink, strict=True)]
        self.palette = palette + [0] * (768 - len(palette))
        self._ink = [0] + [1 + round(v * (_RAMP - 1) / 255) if v else 0
                           for v in range(1, 256)]
        self._label = [0] + [1 + _RAMP + round(v * (_RAMP - 1) / 255) if v else 0
                             for v in range(1, 256)]

    def blank(self, size: tuple[int, int]) -> Image.Image:
        image = Image.new("P", size, 0)
        image.putpalette(self.palette)
        return image

    def text(self, image: Image.Image, xy: tuple[float, float], text: str,
             font: ImageFont.FreeTypeFont, label: bool = False) -> None:
        """Draw anti-aliased text centred on `xy` with the palette's ramp."""
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).text(xy, text, fill=255, font=font, anchor="mm")
        ink = mask.point(self._label if label else self._ink)
        # Indices cannot be blended: the ramp carries the anti-aliasing, the mask only
        # says where the text is.
        image.paste(Image.frombytes("P", image.size, ink.tobytes()), (0, 0),
                    mask.point(_WHERE))


def _fit(font: str, text: str, width: float, height: float) -> ImageFont.FreeTypeFont:
    """The largest size of `font` at which `text` fits the box (a few tries, not a loop
    over every size)."""
    size = max(int(height), 6)
    for _ in range(4):
        left, top, right, bottom = _font(font, size).getbbox(text, anchor="mm")
        scale = min(width / max(right - left, 1), height / max(bottom - top, 1))
        if scale >= 1:
            break
        size = max(int(size * scale * 0.98), 6)
    return _font(font, size)


class _CountdownLayout:
    """A countdown's background and number tiles for one style and set of units."""

    def __init__(self, style: Style, units: str, labels: bool):
        self.canvas = _Canvas(style)
        self.style, self.units = style, units
        w, h = style.width, style.height
        self.cell = w / len(units)
        number_height = h * (0.62 if labels else 0.86)
        widest = localized_digits("000" if units[0] == "d" else "00", style)
        self.number_font = _fit(style.font, widest, self.cell * 0.78, number_height * 0.8)
        self.number_box = (int(self.cell * 0.9), int(number_height))
        self.number_top = int(h * 0.06)
        self.background = self.canvas.blank((w, h))
        if labels:
            short = self.cell < 120
            names = [_label(u, style.locale, short) for u in units]
            label_font = _fit(style.font, max(names, key=len), self.cell * 0.9, h * 0.2)
            for i, name in enumerate(names):
                self.canvas.text(self.background, ((i + 0.5) * self.cell, h * 0.82), name,
                                 label_font, label=True)
        for i in range(1, len(units)):
            self.canvas.text(self.background, (i * self.cell, self.number_top
                                               + number_height / 2), ":", self.number_font)
        self._tiles: dict[str, Image.Image] = {}
        self._lock = threading.Lock()

    def tile(self, text: str) -> Image.Image:
        with self._lock:
            found = self._tiles.get(text)
        if found is None:
            found = self.canvas.blank(self.number_box)
            self.canvas.text(found, (self.number_box[0] / 2, self.number_box[1] / 2),
                             localized_digits(text, self.style), self.number_font)
            with self._lock:
                self._tiles[text] = found
        return found

    def frame(self, remaining: int) -> Image.Image:
        image = self.background.copy()
        for i, text in enumerate(split_remaining(remaining, self.units)):
            x = int((i + 0.5) * self.cell - self.number_box[0] / 2)
            image.paste(self.tile(text), (x, self.number_top))
        return image


@lru_cache(maxsize=128)
def _layout(style: Style, units: str, labels: bool) -> _CountdownLayout:
    return _CountdownLayout(style, units, labels)


def split_remaining(seconds: int, units: str = "dhms") -> list[str]:
    """The numbers a countdown shows for `seconds` left: days (if shown), hours, minutes,
    seconds; the largest unit takes what is above it (100 hours without days)."""
    seconds = max(int(seconds), 0)
    parts = {"d": seconds // 86_400, "h": seconds // 3600 % 24, "m": seconds // 60 % 60,
             "s": seconds % 60}
    if units[0] == "h":
        parts["h"] = seconds // 3600
    elif units[0] == "m":
        parts["m"] = seconds // 60
    return [f"{parts[u]:02d}" for u in units]


def countdown_gif(style: Style, remaining: int, *, units: str = "dhms", labels: bool = True,
                  expired: str = "Expired", frames: int = FRAMES) -> bytes:
    """A GIF counting down one frame a second from `remaining` seconds, played once (so
    its last frame stays); when the end comes within the frames, the last one is the
    expired image. At or past the end, the expired image alone."""
    if remaining <= 0:
        return expired_gif(style, expired)
    deadline = time.monotonic() + RENDER_BUDGET_SECONDS
    layout = _layout(style, units, labels)
    images = []
    for i in range(frames):
        left = remaining - i
        if left <= 0:
            images.append(_expired_image(style, expired))
            break
        images.append(layout.frame(left))
        if time.monotonic() > deadline:
            break
    out = io.BytesIO()
    # No loop count: the animation plays once and stops on its last frame.
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=1000,
                   optimize=False, disposal=1)
    return out.getvalue()


def _expired_image(style: Style, text: str) -> Image.Image:
    canvas = _Canvas(style)
    image = canvas.blank((style.width, style.height))
    text = clean_text(text) or " "
    font = _fit(style.font, text, style.width * 0.9, style.height * 0.5)
    canvas.text(image, (style.width / 2, style.height / 2), text, font)
    return image


def expired_gif(style: Style, text: str = "Expired") -> bytes:
    """The image after a countdown's end: its text, one frame."""
    out = io.BytesIO()
    _expired_image(style, text).save(out, "GIF", optimize=False)
    return out.getvalue()


def text_card_png(style: Style, value: str, label: str | None = None) -> bytes:
    """A card with `value` large (and `label` above it, smaller), as a PNG."""
    canvas = _Canvas(style)
    w, h = style.width, style.height
    image = canvas.blank((w, h))
    value = clean_text(value) or "—"
    if label:
        label = clean_text(label)
        canvas.text(image, (w / 2, h * 0.22), label, _fit(style.font, label, w * 0.9, h * 0.22),
                    label=True)
        canvas.text(image, (w / 2, h * 0.64), value, _fit(style.font, value, w * 0.9, h * 0.5))
    else:
        canvas.text(image, (w / 2, h / 2), value, _fit(style.font, value, w * 0.9, h * 0.6))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False, compress_level=6)
    return out.getvalue()


class RenderCache:
    """Rendered images by key, least recently used out past `max_bytes`; one render in
    flight per key, so a thousand fetches of the same image in the same second cost one."""

    def __init__(self, max_bytes: int = 64 * 2**20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._rendering: dict[tuple, threading.Lock] = {}
        self.renders = 0

    def get(self, key: tuple, render) -> bytes:
        """The image for `key`, rendered by `render()` if nobody has it yet."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
            lock = self._rendering.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                found = self._items.get(key)
            if found is not None:
                return found
            image = render()
            RENDERS.labels(str(key[0])).inc()
            with self._lock:
                self.renders += 1
                self._items[key] = image
                self._size += len(image)
                self._rendering.pop(key, None)
                while self._size > self.max_bytes and self._items:
                    _, dropped = self._items.popitem(last=False)
                    self._size -= len(dropped)
            return image
