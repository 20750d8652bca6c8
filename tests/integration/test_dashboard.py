"""The dashboard's numbers over real HTTP: outcomes per day in the viewer's zone, per
campaign and per A/B variant, counted from what really happened to sent mail."""
from __future__ import annotations

import datetime as dt
import re
import time

import requests
from sqlalchemy import update

from scheduler.store.db import utcnow
from scheduler.store.models import MessageEvent
from tests.helpers import wait_for
from tests.integration.test_delivery import _bounce, _delivered, _html, _reply, _send


def test_stats_count_sends_opens_replies_bounces_per_day_campaign_and_variant(live, api):
    opened = _send(live, api)
    pixel = re.search(r'(?:src|background)="([^"]+/t/o/[^"]+)"', _html(_delivered(live))).group(1)
    time.sleep(0.5)  # sooner would look like a mail proxy's prefetch
    requests.get(pixel, timeout=10, headers={"User-Agent": "Mozilla/5.0"})
    bounced = _send(live, api, to="gone@example.org")
    live.sandbox.deliver("ada@example.com", _reply(opened["message_id_header"]))
    live.sandbox.deliver("ada@example.com", _bounce(bounced["message_id_header"]))
    live.worker.sync.sync_account(1, force=True)
    template = api.post(live.url + "/api/v1/templates", json={
        "name": "T", "subject": "Hi", "html": "<p>Hi</p>"}).json()
    api.post(live.url + "/api/v1/contacts", json=[
        {"email": f"c{i}@example.org"} for i in range(4)])
    campaign = api.post(live.url + "/api/v1/campaigns", json={
        "name": "Spring", "template_id": template["id"],
        "variants": [{"key": "A"}, {"key": "B", "subject": "Hello"}]}).json()
    wait_for(lambda: [m["status"] for m in api.get(
        f"{live.url}/api/v1/messages?campaign_id={campaign['id']}").json()["items"]]
        == ["sent"] * 4)

    stats = api.get(live.url + "/api/v1/stats?days=7&tz=UTC").json()
    assert len(stats["days"]) == 7 and stats["days"][-1] == utcnow().date().isoformat()
    assert stats["totals"] == {"sent": 6, "opened": 1, "clicked": 0, "replied": 1,
                               "bounced": 1, "unsubscribed": 0}
    assert stats["series"]["sent"][-1] == 6 and sum(stats["series"]["sent"][:-1]) == 0
    spring = stats["campaigns"][0]
    assert (spring["name"], spring["queued"], spring["sent"]) == ("Spring", 4, 4)
    assert {k: v["sent"] for k, v in spring["variants"].items()} == {"A": 2, "B": 2}
    only = api.get(f"{live.url}/api/v1/stats?campaign_id={campaign['id']}").json()
    assert only["totals"]["sent"] == 4 and only["totals"]["replied"] == 0

    # Days are the viewer's: 23:30 UTC yesterday is today in Tokyo, yesterday in New York.
    late = dt.datetime.combine(utcnow().date() - dt.timedelta(days=1), dt.time(23, 30),
                               dt.UTC)
    with live.db.write() as s:
        s.execute(update(MessageEvent).where(MessageEvent.type == "sent").values(at=late))
    tokyo = api.get(live.url + "/api/v1/stats?days=3&tz=Asia/Tokyo").json()
    new_york = api.get(live.url + "/api/v1/stats?days=3&tz=America/New_York").json()
    tokyo_day = late.astimezone(dt.timezone(dt.timedelta(hours=9))).date().isoformat()
    assert tokyo["series"]["sent"][tokyo["days"].index(tokyo_day)] == 6
    ny_day = (late - dt.timedelta(hours=5)).date().isoformat()  # EST in this season or EDT:
    # The same date either way.
    assert new_york["series"]["sent"][new_york["days"].index(ny_day)] == 6
    assert new_york["timezone"] == "America/New_York"
    bad = api.get(live.url + "/api/v1/stats?tz=Mars/Olympus")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "tz"
    assert api.get(live.url + "/api/v1/stats?days=0").json()["error"]["field"] == "days"
