"""PostgreSQL: the images of one look, fetched at once over separate connections, are one
open (the conditional UPDATE decides; a read-then-write would count several)."""
from __future__ import annotations

import datetime as dt
import re
import threading

import requests
from sqlalchemy import update

from scheduler.store.db import utcnow
from scheduler.store.models import Message
from tests.integration.test_delivery import _delivered, _get, _html, _send
from tests.integration.test_live_images import COUNTDOWN, PERSON


def test_a_look_fetching_every_image_at_once_is_one_open_on_postgres(serve, pg_url):
    live = serve(MAILRELEASE_DATABASE_URL=pg_url)
    api = live.user()
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    sent = _send(live, api, html=COUNTDOWN, data={"ends": ends})
    assert sent["status"] == "sent", sent
    html = _html(_delivered(live))
    image = re.search(r'src="([^"]+/li/[^"]+\.gif)"', html).group(1)
    pixel = re.search(r'(?:src|background)="([^"]+/t/o/[^"]+)"', html).group(1)
    for look in range(1, 4):
        # Each look comes well after the one before, and long after delivery.
        with live.db.write() as s:
            s.execute(update(Message).values(
                sent_at=utcnow() - dt.timedelta(minutes=10),
                last_open_at=None if look == 1 else utcnow() - dt.timedelta(minutes=1)))
        start = threading.Barrier(12)

        def fetch(url: str, start=start) -> None:
            with requests.Session() as session:
                session.headers.update(PERSON)
                start.wait()
                assert session.get(url, timeout=30).status_code == 200

        threads = [threading.Thread(target=fetch, args=(u,)) for u in (image, pixel) * 6]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        body = _get(live, api, sent["id"])
        assert body["opens"] == look, body
        assert [e["type"] for e in body["events"]].count("opened") == 1
