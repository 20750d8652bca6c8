"""Live images: what templates write, and the images drawn (read back from their pixels)."""
from __future__ import annotations

import datetime as dt
import io
import threading

import pytest
from PIL import Image

from scheduler.content import drawing, live_images
from scheduler.content.links import Links, stand_in_links
from scheduler.content.personalize import render_part
from scheduler.errors import MissingData, TemplateError
from tests.image_reader import frames, read_countdown, seconds_shown

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
LEFT = 2 * 86_400 + 13 * 3600 + 45 * 60 + 9


def test_a_countdown_is_sixty_frames_a_second_apart_played_once():
    gif = drawing.countdown_gif(drawing.Style(), LEFT)
    image = Image.open(io.BytesIO(gif))
    assert image.n_frames == 60 and image.info["duration"] == 1000
    # No loop count: browsers and mail clients play it once and keep the last frame.
    assert "loop" not in image.info
    shown = frames(gif)
    assert read_countdown(shown[0]) == ["02", "13", "45", "09"]
    assert [seconds_shown(shown[i]) for i in (1, 9, 10, 59)] == [
        LEFT - 1, LEFT - 9, LEFT - 10, LEFT - 59]
    assert len(gif) < 150_000


def test_the_last_frame_of_a_countdown_that_ends_within_the_minute_is_the_expired_image():
    gif = drawing.countdown_gif(drawing.Style(), 5, expired="Sale over")
    shown = frames(gif)
    assert len(shown) == 6
    assert [seconds_shown(f) for f in shown[:5]] == [5, 4, 3, 2, 1]
    assert shown[5].tobytes() == frames(drawing.expired_gif(
        drawing.Style(), "Sale over"))[0].tobytes()
    assert drawing.countdown_gif(drawing.Style(), 0, expired="Sale over") == \
        drawing.expired_gif(drawing.Style(), "Sale over")


def test_hours_and_minutes_only_and_other_sizes_and_colours_read_the_same():
    style = drawing.Style(width=360, height=90, color=(255, 255, 255),
                          background=(26, 115, 232), font="mono")
    gif = drawing.countdown_gif(style, 100 * 3600 + 4 * 60 + 5, units="hms", labels=False)
    first = frames(gif)[0]
    assert first.size == (360, 90) and first.getpixel((0, 0)) == (26, 115, 232)
    assert read_countdown(first, 3, number_share=1.0,
                          font_file="DejaVuSansMono-Bold.ttf") == ["100", "04", "05"]


def test_digits_and_labels_follow_the_locale():
    arabic = drawing.Style(locale="ar_EG")
    assert drawing.localized_digits("09", arabic) == "\u0660\u0669"
    # Latin locales, and numbering systems the font cannot draw, keep ASCII digits.
    assert drawing.localized_digits("09", drawing.Style(locale="bn")) == "09"
    german, english = (frames(drawing.countdown_gif(drawing.Style(locale=loc), LEFT))[0]
                       for loc in ("de", "en"))
    labels = (0, 90, 600, 120)
    assert german.crop(labels).tobytes() != english.crop(labels).tobytes()
    assert german.crop((0, 0, 600, 80)).tobytes() == english.crop((0, 0, 600, 80)).tobytes()


def test_a_render_over_its_time_budget_stops_adding_frames(monkeypatch):
    monkeypatch.setattr(drawing, "RENDER_BUDGET_SECONDS", 0)
    shown = frames(drawing.countdown_gif(drawing.Style(), LEFT + 1))
    assert len(shown) == 1 and seconds_shown(shown[0]) == LEFT + 1


def test_text_drawn_into_images_loses_control_characters_and_is_bounded():
    assert drawing.clean_text("Price\x00\u202e now\n\t!") == "Price now !"
    assert len(drawing.clean_text("x" * 500)) == drawing.MAX_TEXT
    png = drawing.text_card_png(drawing.Style(height=100), "x" * 500, "Price\x07")
    assert Image.open(io.BytesIO(png)).size == (600, 100)


def test_identical_renders_are_shared_and_rendered_once_at_a_time():
    cache = drawing.RenderCache()
    calls = []
    started = threading.Barrier(8)

    def render():
        calls.append(1)
        return drawing.countdown_gif(drawing.Style(), LEFT)

    results = []

    def fetch():
        started.wait()
        results.append(cache.get(("k",), render))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and cache.renders == 1 and len(set(results)) == 1
    small = drawing.RenderCache(max_bytes=1000)
    small.get(("a",), lambda: b"x" * 600)
    small.get(("b",), lambda: b"y" * 600)
    assert small.get(("a",), lambda: b"again") == b"again"  # the oldest was let go


def _image(html: str, data: dict | None = None, sources=None, at: str | None = None):
    links = Links("secret", "https://mr.example")
    return render_part("html", html, {**(data or {}), **stand_in_links(sources, data, links,
                                                                       at)}), links


def test_a_template_s_countdown_is_an_img_with_a_signed_url_carrying_its_end():
    html, links = _image("<p>{{ live_image('countdown', until='2026-12-24T18:00:00+01:00', "
                         "width=500, height=100, color='#c00', alt='Sale ends') }}</p>")
    assert 'width="500" height="100" alt="Sale ends"' in html
    token = html.split("/li/preview/")[1].split(".gif")[0]
    spec, _ = links.read_preview(token)
    assert spec["u"] == int(dt.datetime(2026, 12, 24, 17, 0, tzinfo=dt.UTC).timestamp())
    assert spec["color"] == "#c00" and spec["width"] == 500
    assert links.read_preview(token[:-2] + "xx") is None


def test_until_may_name_a_field_and_a_time_without_zone_is_the_recipient_s():
    spec = live_images.spec_of("countdown", {"until": "trial_ends"},
                               {"trial_ends": "2026-12-24T18:00", "timezone": "Europe/Paris"},
                               None)
    assert spec["u"] == int(dt.datetime(2026, 12, 24, 17, 0, tzinfo=dt.UTC).timestamp())
    spec = live_images.spec_of("countdown", {"until": "contact.ends"},
                               {"contact": {"ends": "2026-12-24T18:00:00Z"}}, None)
    assert spec["u"] == int(dt.datetime(2026, 12, 24, 18, 0, tzinfo=dt.UTC).timestamp())
    with pytest.raises(MissingData) as missing:
        live_images.spec_of("countdown", {"until": "trial_ends"}, {}, None)
    assert missing.value.variable == "trial_ends"


@pytest.mark.parametrize(("call", "says"), [
    ("live_image('countdown')", "until="),
    ("live_image('countdown', until='2026-13-40T00:00Z')", "not an ISO 8601 time"),
    ("live_image('countdown', until='ends')", "not an ISO 8601"),
    ("live_image('countdown', hours_after_send=-1)", "hours_after_send"),
    ("live_image('countdown', hours_after_send=2, color='red')", "color"),
    ("live_image('countdown', hours_after_send=2, width=5000)", "width"),
    ("live_image('countdown', hours_after_send=2, locale='xx_YY')", "locale"),
    ("live_image('countdown', hours_after_send=2, font='comic')", "font"),
    ("live_image('countdown', hours_after_send=2, colour='#fff')", "no option 'colour'"),
    ("live_image('text', source='stock')", "not one of the template's sources"),
    ("live_image('video')", "kind must be one of"),
])
def test_bad_options_are_template_errors_naming_the_option_and_line(call, says):
    with pytest.raises(TemplateError) as error:
        _image("<p>Hello</p>\n<p>{{ " + call + " }}</p>", {"ends": "soon"})
    assert says in str(error.value) and error.value.field == "html"
    assert error.value.line == 2


def test_a_text_card_shows_the_value_at_its_path_in_the_locale_s_way():
    spec = live_images.spec_of("text", {"source": "stock", "value": "item.price",
                                        "locale": "de", "label": "Preis"}, {},
                               [{"name": "stock"}])
    assert live_images.text_value(spec, {"item": {"price": 1299.5}}) == "1.299,5"
    assert live_images.text_value(spec, {"item": {}}) == "—"
    assert live_images.text_value({**spec, "fallback": "bald"}, None) == "bald"
    assert live_images.text_value({"k": "text", "source": "s"}, "ab\x00c") == "ab c"


def test_a_countdown_after_sending_counts_from_the_send_and_ends_expired():
    cache = drawing.RenderCache()
    spec = live_images.spec_of("countdown", {"hours_after_send": 48}, {}, None)
    sent = NOW - dt.timedelta(hours=1, seconds=30)
    first = frames(live_images.countdown_image(spec, sent, NOW, cache))[0]
    assert seconds_shown(first) == 47 * 3600 - 30
    later = live_images.countdown_image(spec, sent, NOW + dt.timedelta(days=3), cache)
    assert later == live_images.countdown_image(spec, sent, NOW + dt.timedelta(days=4), cache)
    assert len(frames(later)) == 1
    # The same second is the same image, drawn once.
    again = live_images.countdown_image(spec, sent, NOW, cache)
    assert again == live_images.countdown_image(spec, sent, NOW, cache)
    assert cache.renders == 2
