"""Gmail clips HTML past about 102 KB: such a message is warned about before it goes, and
its unsubscribe link and open pixel are put where the clipped view still shows them."""
from __future__ import annotations

import pytest

from scheduler.content.links import (
    CLIP_BYTES,
    Links,
    clip_warning,
    decorate,
    message_warnings,
    tracked_size,
)

LINKS = Links("k", "https://m.example")
MID = "a" * 32


def _catalogue(products: int) -> str:
    rows = "".join(f'<p>Product {n}: <a href="https://shop.example.com/p/{n}?utm_source=mail">'
                   f"buy</a></p>" for n in range(products))
    return f"<html><body><h1>News</h1>{rows}</body></html>"


def _decorated(html: str) -> str:
    return decorate(html, "", message_id=MID, sender="ada@example.com", links=LINKS,
                    track=True, unsubscribe=True,
                    unsubscribe_url=LINKS.unsubscribe_url(MID)).html


def test_a_short_message_keeps_its_unsubscribe_link_and_pixel_at_the_end():
    html = _decorated(_catalogue(5))
    assert html.index("Product 4") < html.index("Unsubscribe") < html.index("/t/o/")
    assert clip_warning(_catalogue(5)) is None


def test_past_the_threshold_they_come_first_and_stay_within_what_gmail_shows():
    long = _catalogue(1200)
    html = _decorated(long)
    assert len(html.encode()) > CLIP_BYTES
    shown = html.encode()[:CLIP_BYTES].decode(errors="ignore")
    assert "Unsubscribe" in shown and "/t/o/" in shown
    assert html.index("Unsubscribe") < html.index("Product 0")
    assert "Gmail clips" in clip_warning(long)


@pytest.mark.parametrize("products", [50, 400, 1200])
def test_the_tracked_size_is_estimated_within_ten_percent_without_signing(products):
    html = _catalogue(products)
    real = len(_decorated(html).encode())
    assert real <= tracked_size(html) <= real * 1.1


def test_links_that_are_not_absolute_and_images_without_alt_are_warned_about():
    html = ('<p><a href="/account">you</a> <a href="https://ok.example/">ok</a> '
            '<a href="mailto:help@example.com">mail</a> <a href="#top">top</a> '
            '<a href="www.example.com">site</a></p><img src="https://i.example/a.png">'
            '<img src="https://i.example/b.png" alt="">')
    warnings = message_warnings(html)
    assert any("2 links not absolute" in w and "'/account'" in w and "'www.example.com'" in w
               for w in warnings), warnings
    assert any(w.startswith("1 image without alt text") for w in warnings), warnings
    assert message_warnings('<p><a href="https://ok.example/">ok</a>'
                            '<img src="https://i.example/a.png" alt="A"></p>') == []


def test_short_mail_without_images_gets_a_pixel_that_does_not_make_it_image_only():
    # SpamAssassin's HTML_IMAGE_ONLY_* rules (0.6 to 2.8 points) fire on HTML with an
    # image and under 3,200 bytes of text: there the pixel must not be an <img>.
    short = _decorated("<html><body><p>Hi Ann, your invoice is ready.</p></body></html>")
    assert "<img" not in short and f'background="{LINKS.open_url(MID)}"' in short
    with_image = _decorated('<html><body><p>Hi</p><img src="https://x.example/a.png" '
                            'alt="logo"></body></html>')
    assert f'<img src="{LINKS.open_url(MID)}"' in with_image
    long_text = _decorated("<html><body>" + "<p>Plenty of words here.</p>" * 200
                           + "</body></html>")
    assert f'<img src="{LINKS.open_url(MID)}"' in long_text
