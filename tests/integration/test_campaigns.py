"""Campaigns: a mail merge to an audience, and A/B tests that send the winner to the rest."""
from __future__ import annotations

from sqlalchemy import update

from scheduler.automation import campaigns
from scheduler.store.db import utcnow
from scheduler.store.models import Message
from tests.helpers import wait_for


def _template(live, api) -> int:
    return api.post(f"{live.url}/api/v1/templates", json={
        "name": "news", "subject": "News for {{ name | default('you') }}",
        "html": "<p>{{ plan | default('free') }} plan news</p>"}).json()["id"]


def test_a_campaign_goes_to_subscribed_contacts_and_counts_the_skipped(live, api):
    api.post(f"{live.url}/api/v1/contacts", json=[
        {"email": "a@example.org", "name": "Ann", "attributes": {"plan": "pro"}},
        {"email": "b@example.org", "name": "Bob", "attributes": {"plan": "free"}},
        {"email": "c@example.org", "subscription": "unsubscribed"}])
    tid = _template(live, api)
    resp = api.post(f"{live.url}/api/v1/campaigns", json={
        "template_id": tid, "audience": {"filter": [
            {"field": "contact.email", "op": "contains", "value": "@example.org"}]}})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["counts"] == {"audience": 2, "skipped_unsubscribed": 1, "queued": 2,
                              "to_personal_gmail": 0}
    wait_for(lambda: len(live.sandbox.sent()) == 2)
    assert sorted(m["subject"] for m in live.sandbox.sent()) == ["News for Ann",
                                                                 "News for Bob"]
    stats = api.get(f"{live.url}/api/v1/campaigns/{body['id']}/stats").json()["stats"]
    wait_for(lambda: api.get(f"{live.url}/api/v1/campaigns/{body['id']}/stats").json()
             ["stats"]["A"]["sent"] == 2)
    assert stats["A"]["queued"] == 2
    bad = api.post(f"{live.url}/api/v1/campaigns", json={"template_id": tid,
                                                         "audience": "some"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "audience"


def _ab(live, api, **ab) -> dict:
    api.post(f"{live.url}/api/v1/contacts", json=[
        {"email": f"p{i}@example.org", "name": f"P{i}"} for i in range(100)])
    tid = _template(live, api)
    resp = api.post(f"{live.url}/api/v1/campaigns", json={
        "template_id": tid, "variants": [{"key": "A"}, {"key": "B", "subject": "Big news!"}],
        "ab": {"test_fraction": 0.2, "metric": "open", "decide_after_seconds": 0, **ab}})
    assert resp.status_code == 201, resp.text
    return resp.json()


def _deliver_test_group(live, campaign_id: int, opened_variant: str | None) -> None:
    """What sending and tracking would record for the test group (no worker runs here)."""
    with live.db.write() as s:
        s.execute(update(Message).where(Message.campaign_id == campaign_id)
                  .values(status="sent", sent_at=utcnow()))
        if opened_variant:
            s.execute(update(Message).where(Message.campaign_id == campaign_id,
                                            Message.variant == opened_variant)
                      .values(opens=1))


def test_ab_sends_the_winner_by_open_rate_to_the_rest(live_no_worker):
    live = live_no_worker
    api = live.user()
    body = _ab(live, api, min_per_variant=5)
    assert body["status"] == "testing" and body["counts"]["queued"] == 20
    _deliver_test_group(live, body["id"], "B")
    assert campaigns.decide_due(live.db, utcnow()) == [body["id"]]
    assert campaigns.decide_due(live.db, utcnow()) == []  # decided once
    after = api.get(f"{live.url}/api/v1/campaigns/{body['id']}/stats").json()
    assert after["winner"] == "B" and "best open rate" in after["decision"]["reason"]
    assert after["counts"]["queued"] == 100
    assert after["stats"]["B"]["queued"] == 90 and after["stats"]["A"]["queued"] == 10
    assert after["stats"]["B"]["rates"]["open"] == 1.0


def test_ab_with_too_small_a_sample_says_so(live_no_worker):
    live = live_no_worker
    api = live.user()
    body = _ab(live, api)  # 10 per variant, 20 needed
    _deliver_test_group(live, body["id"], "B")
    campaigns.decide_due(live.db, utcnow())
    after = api.get(f"{live.url}/api/v1/campaigns/{body['id']}").json()
    assert after["winner"] == "A" and "too small" in after["decision"]["reason"]


def test_ab_tie_is_explained(live_no_worker):
    live = live_no_worker
    api = live.user()
    body = _ab(live, api, min_per_variant=5)
    _deliver_test_group(live, body["id"], None)
    campaigns.decide_due(live.db, utcnow())
    after = api.get(f"{live.url}/api/v1/campaigns/{body['id']}").json()
    assert after["winner"] == "A" and after["decision"]["reason"].startswith("tie")


def test_a_follow_up_goes_unless_the_recipient_replied(live_no_worker):
    from scheduler.worker import ReleaseWorker
    live = live_no_worker
    api = live.user()
    api.post(f"{live.url}/api/v1/contacts", json=[{"email": "r1@example.org"},
                                                  {"email": "r2@example.org"}])
    tid = _template(live, api)
    body = api.post(f"{live.url}/api/v1/campaigns", json={
        "template_id": tid, "follow_ups": [{"after_seconds": 3 * 86400, "unless": "reply",
                                            "subject": "Following up"}]}).json()
    assert body["counts"]["queued"] == 4  # two first steps, two follow-ups
    worker = ReleaseWorker(live.wiring)
    worker.run_once(wait=True)
    first = {m["to"]: m for m in live.sandbox.sent()}
    assert set(first) == {"r1@example.org", "r2@example.org"}
    original = first["r1@example.org"]["messageId"]
    live.sandbox.deliver("ada@example.com", (
        f"From: r1@example.org\r\nTo: ada@example.com\r\nSubject: Re: news\r\n"
        f"In-Reply-To: {original}\r\n\r\nNo thanks\r\n"))
    worker.sync.sync_account(1, force=True)
    with live.db.write() as s:  # three days later
        s.execute(update(Message).where(Message.follows_id.is_not(None))
                  .values(release_at=utcnow()))
    worker.run_once(wait=True)
    sent = [m for m in live.sandbox.sent() if m["subject"] == "Following up"]
    assert [m["to"] for m in sent] == ["r2@example.org"]
    with live.db.read() as s:
        skipped = s.query(Message).filter(Message.follows_id.is_not(None),
                                          Message.status == "cancelled").one()
        assert "replied" in skipped.error
    worker.stop()
