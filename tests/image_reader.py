"""Reads a countdown image the way a person would: the numbers in it, from the pixels.

Independent of how the product draws: each cell's ink is cut out and compared, at its own
size, with every two- or three-digit number drawn large in the same font; the closest
wins. It knows only what a reader sees: equal cells side by side, numbers above labels.
"""
from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from scheduler.content.drawing import FONT_DIR

_SIZE = (48, 32)  # everything is compared at this size, as black and white


def frames(gif: bytes) -> list[Image.Image]:
    """Every frame of an animated GIF, as RGB (each frame as shown, after the ones before)."""
    image = Image.open(io.BytesIO(gif))
    out = []
    for i in range(getattr(image, "n_frames", 1)):
        image.seek(i)
        out.append(image.convert("RGB"))
    return out


def _ink(image: Image.Image) -> Image.Image | None:
    gray = image.convert("L")
    background = gray.getpixel((0, 0))
    mask = gray.point(lambda v: 255 if abs(v - background) > 100 else 0)
    box = mask.getbbox()
    return None if box is None else mask.crop(box).resize(_SIZE).convert("1")


@lru_cache(maxsize=8)
def _candidates(width: int, font_file: str) -> dict[str, int]:
    font = ImageFont.truetype(str(FONT_DIR / font_file), 120)
    out = {}
    for n in range(10 ** width):
        text = f"{n:0{width}d}"
        canvas = Image.new("L", (120 * width, 160), 255)
        ImageDraw.Draw(canvas).text((10, 10), text, fill=0, font=font)
        ink = _ink(canvas)
        assert ink is not None
        out[text] = int.from_bytes(ink.tobytes(), "big")
    return out


def _read_cell(cell: Image.Image, font_file: str) -> str | None:
    ink = _ink(cell)
    if ink is None:
        return None
    seen = int.from_bytes(ink.tobytes(), "big")
    best = None
    for width in (2, 3):
        for text, candidate in _candidates(width, font_file).items():
            score = -(seen ^ candidate).bit_count()  # pixels that agree, less all of them
            if best is None or score > best[0]:
                best = (score, text)
    assert best is not None
    return best[1]


def read_countdown(frame: Image.Image, cells: int = 4, number_share: float = 0.68,
                   font_file: str = "DejaVuSans-Bold.ttf") -> list[str]:
    """The numbers shown, left to right (e.g. ["02", "13", "45", "09"]), read as drawn
    in `font_file` (one of the bundled fonts)."""
    width, height = frame.size
    step = width / cells
    out = []
    for i in range(cells):
        left, right = int(i * step + step * 0.1), int((i + 1) * step - step * 0.1)
        found = _read_cell(frame.crop((left, 0, right, int(height * number_share))),
                           font_file)
        out.append(found or "")
    return out


def seconds_shown(frame: Image.Image, units: str = "dhms") -> int:
    """The time left a countdown frame shows, in seconds."""
    scale = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * scale[u] for n, u in zip(read_countdown(frame, len(units)), units,
                                                  strict=True))
