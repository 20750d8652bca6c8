"""Live images in sent mail, fetched over HTTP as Gmail's image proxy and a person would:
the time left read back from the pixels, expired and tampered URLs, honest opens, text
cards fetched at open, the editor's preview."""
from __future__ import annotations

import datetime as dt
import io
import math
import re
import threading
import time

import pytest
import requests
from flask import Flask, jsonify
from PIL import Image
from sqlalchemy import update

from scheduler.content import drawing
from scheduler.store.db import utcnow
from scheduler.store.models import Message
from tests.helpers import ServerThread, wait_for
from tests.image_reader import frames, seconds_shown
from tests.integration.test_delivery import _delivered, _get, _html, _send

PERSON = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/130"}
PROXY = {"User-Agent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                       "(via ggpht.com GoogleImageProxy)"}
COUNTDOWN = ("<html><body><p>The sale ends soon.</p>"
             "{{ live_image('countdown', until=ends, expired='Offer ended', alt='Time left') }}"
             "</body></html>")


def _image_url(live) -> str:
    return re.search(r'src="([^"]+/li/[^"]+\.(?:gif|png))"', _html(_delivered(live))).group(1)


def _fetch(url: str, headers=PERSON) -> tuple[requests.Response, float, float]:
    before = time.time()
    resp = requests.get(url, headers=headers, timeout=10)
    return resp, before, time.time()


def _as_person_later(live) -> None:
    """Make the sent messages old enough that a fetch is a person, not a proxy's."""
    with live.db.write() as s:
        s.execute(update(Message).values(sent_at=utcnow() - dt.timedelta(minutes=5)))


def test_a_countdown_shows_the_time_left_at_each_fetch_and_is_never_kept(live, api):
    ends = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2, minutes=13,
                                                                         seconds=45)
    sent = _send(live, api, html=COUNTDOWN, data={"ends": ends.isoformat()})
    assert sent["status"] == "sent", sent
    url = _image_url(live)
    assert url.startswith(live.settings.public_url + "/li/")
    assert 'alt="Time left"' in _html(_delivered(live))
    resp, before, after = _fetch(url)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/gif"
    assert resp.headers["Cache-Control"] == "no-cache, max-age=0"
    assert "ETag" not in resp.headers and "Last-Modified" not in resp.headers
    shown = frames(resp.content)
    assert len(shown) == 60 and len(resp.content) < 150_000
    left = seconds_shown(shown[0], "dhms")
    assert math.floor(ends.timestamp() - after) <= left <= math.ceil(ends.timestamp() - before)
    assert seconds_shown(shown[59]) == left - 59
    # A later fetch is drawn for its own moment.
    with live.db.write() as s:
        s.execute(update(Message).values(data={"ends": "ignored: the end is in the URL"}))
    later, _, _ = _fetch(url)
    assert seconds_shown(frames(later.content)[0]) <= left


def test_after_the_end_the_expired_image_and_a_tampered_url_a_neutral_one(live, api):
    ended = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    _send(live, api, html=COUNTDOWN, data={"ends": ended})
    url = _image_url(live)
    expired, _, _ = _fetch(url)
    assert expired.status_code == 200 and len(frames(expired.content)) == 1
    assert expired.content == drawing.expired_gif(drawing.Style(), "Offer ended")
    token = url.rsplit("/", 1)[1]
    tampered = [url.replace(token, token[:10] + "x" + token[11:]),
                url.rsplit("/", 1)[0] + "/nothing.gif", url[:-4] + ".jpg"]
    answers = [requests.get(u, headers=PERSON, timeout=10) for u in tampered]
    # Never an error (Gmail's proxy would keep it), and nothing about the message.
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1 and answers[0].content != expired.content
    assert answers[0].headers["Cache-Control"] == "no-cache, max-age=0"


def test_the_proxy_at_delivery_and_head_requests_are_machines_and_a_look_is_one_open(live,
                                                                                      api):
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    sent = _send(live, api, html=COUNTDOWN, data={"ends": ends})
    html = _html(_delivered(live))
    image = _image_url(live)
    pixel = re.search(r'(?:src|background)="([^"]+/t/o/[^"]+)"', html).group(1)
    # Gmail's proxy fetches both images right after delivery: one machine signal.
    _fetch(image, PROXY)
    _fetch(pixel, PROXY)
    requests.head(image, headers=PERSON, timeout=10)
    body = _get(live, api, sent["id"])
    assert (body["opens"], body["machine_opens"]) == (0, 1)
    # Later the person opens it: the pixel and the countdown are fetched at once.
    _as_person_later(live)
    with live.db.write() as s:
        s.execute(update(Message).values(last_machine_open_at=None))
    threads = [threading.Thread(target=_fetch, args=(u, PROXY)) for u in (image, pixel) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    requests.head(image, headers=PROXY, timeout=10)  # a HEAD is never the person
    body = _get(live, api, sent["id"])
    assert (body["opens"], body["machine_opens"]) == (1, 2)
    assert [e["type"] for e in body["events"]].count("opened") == 1
    # Another look, later: a second open (the first person's open stays the only event).
    with live.db.write() as s:
        s.execute(update(Message).values(last_open_at=utcnow() - dt.timedelta(minutes=2)))
    _fetch(image, PROXY)
    body = _get(live, api, sent["id"])
    assert body["opens"] == 2 and [e["type"] for e in body["events"]].count("opened") == 1


def test_a_security_scanner_is_never_an_open(live, api):
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    sent = _send(live, api, html=COUNTDOWN, data={"ends": ends})
    _as_person_later(live)
    _fetch(_image_url(live), {"User-Agent": "Mozilla/5.0 Barracuda Sentinel (EE)"})
    body = _get(live, api, sent["id"])
    assert (body["opens"], body["machine_opens"]) == (0, 1)


def test_hours_after_sending_counts_from_the_send(live, api):
    sent = _send(live, api, html="<p>24 hours to claim it.</p>{{ live_image('countdown', "
                                 "hours_after_send=24, units='hms') }}")
    sent_at = dt.datetime.fromisoformat(sent["sent_at"])
    resp, before, after = _fetch(_image_url(live))
    left = seconds_shown(frames(resp.content)[0], "hms")
    end = sent_at.timestamp() + 24 * 3600
    assert math.floor(end - after) <= left <= math.ceil(end - before)


def test_a_missing_field_holds_the_message_and_a_bad_option_is_a_422_naming_the_line(live,
                                                                                    api):
    held = _send(live, api, html=COUNTDOWN, data={})
    assert held["status"] == "held" and "'ends'" in held["error"], held
    resp = api.post(f"{live.url}/api/v1/templates", json={
        "name": "sale", "subject": "Sale", "html":
            "<p>Sale</p>\n{{ live_image('countdown', hours_after_send=2, color='blue') }}"})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["field"] == "html" and "line 2" in error["message"]
    assert "color" in error["message"]
    assert not api.get(f"{live.url}/api/v1/templates").json()["items"]


class _Price:
    def __init__(self):
        app = Flask("price")
        self.price = 19.5
        self.up = True

        @app.get("/price")
        def price():
            if not self.up:
                return "down", 503
            return jsonify({"item": {"price": self.price}})
        self.server = ServerThread(app)


@pytest.fixture
def price():
    server = _Price()
    yield server
    server.server.stop()


def test_a_text_card_is_fetched_again_at_each_open_with_the_source_s_fallback(serve, price):
    live = serve(MAILRELEASE_CONTENT_HOSTS="127.0.0.1:" + price.server.url.rsplit(":", 1)[1])
    api = live.user()
    resp = api.post(f"{live.url}/api/v1/templates", json={
        "name": "price", "subject": "Price", "html":
            "<p>Today's price:</p>{{ live_image('text', source='price', value='item.price', "
            "label='Price now', locale='de', height=100) }}",
        "sources": [{"name": "price", "url": price.server.url + "/price",
                     "fallback": {"item": {"price": "sold out"}}}]})
    assert resp.status_code == 201, resp.text
    sent = _send(live, api, template_id=resp.json()["id"], subject=None, html=None)
    assert sent["status"] == "sent", sent
    url = _image_url(live)
    style = drawing.Style(height=100, locale="de")
    first, _, _ = _fetch(url)
    assert first.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(first.content)).size == (600, 100)
    assert first.content == drawing.text_card_png(style, "19,5", "Price now")
    price.price = 1299
    assert _fetch(url)[0].content == drawing.text_card_png(style, "1.299", "Price now")
    price.up = False
    assert _fetch(url)[0].content == drawing.text_card_png(style, "sold out", "Price now")


def test_the_preview_draws_the_countdown_now_or_at_a_chosen_time(live, api):
    ends = "2027-01-01T00:00:00+00:00"
    at = "2026-12-31T22:58:30+00:00"
    resp = api.post(f"{live.url}/api/v1/templates/preview", json={
        "name": "x", "subject": "New year", "html": COUNTDOWN, "data": {"ends": ends},
        "at": at})
    assert resp.status_code == 200, resp.text
    url = re.search(r'src="([^"]+/li/preview/[^"]+)"', resp.json()["html"]).group(1)
    shown = frames(requests.get(url.replace("&amp;", "&"), timeout=10).content)
    assert seconds_shown(shown[0]) == 3600 + 90
    now = requests.get(url.split("?")[0], timeout=10).content
    assert seconds_shown(frames(now)[0]) > 3600 + 90
    # Nothing is counted for a preview, and a changed preview URL is the neutral image.
    assert requests.get(url.split("?")[0][:-8] + "AAAA.gif", timeout=10).content == \
        requests.get(f"{live.url}/li/nothing.gif", timeout=10).content
    wait_for(lambda: True)
