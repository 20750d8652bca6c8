"""One owner per decision: an A/B test is decided once, and the database refuses a second
winner's messages even if the claim were wrong."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from scheduler.automation import campaigns
from scheduler.commands import NewCampaign
from scheduler.store.models import Campaign, Contact, Message, Template
from tests.unit.conftest import T0


@pytest.fixture
def ab(db):
    with db.write() as s:
        s.add_all([Template(team_id=1, name=k, subject=k, html=f"<p>{k}</p>", sources=[],
                            created_at=T0, updated_at=T0) for k in "AB"])
        s.add_all([Contact(team_id=1, email=f"p{n}@example.org", attributes={},
                           created_at=T0, updated_at=T0) for n in range(50)])
    with db.read() as s:
        prepared = campaigns.prepare_campaign(s, 1, 1, NewCampaign.model_validate({
            "variants": [{"key": "A", "template_id": 1}, {"key": "B", "template_id": 2}],
            "ab": {"test_fraction": 0.2, "decide_after_seconds": 0}}), T0)
    with db.write() as s:
        return campaigns.store_campaign(s, prepared).id


def _count(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Message))


def test_an_ab_test_is_decided_once(db, ab):
    assert _count(db) == 10
    assert campaigns.decide_due(db, T0) == [ab]
    assert campaigns.decide_due(db, T0) == []
    with db.read() as s:
        assert campaigns.plan_decision(s, ab, T0) is None
    assert _count(db) == 50


def test_a_second_decision_cannot_queue_anyone_twice(db, ab):
    """As if the claim were broken: the unique origin keys refuse the second winner."""
    with db.write() as s:
        pending = s.get(Campaign, ab).pending
    assert campaigns.decide_due(db, T0) == [ab]
    with db.write() as s:
        s.execute(update(Campaign).where(Campaign.id == ab).values(status="testing",
                                                                   pending=pending))
    with db.read() as s:
        planned = campaigns.plan_decision(s, ab, T0)
    with pytest.raises(IntegrityError):
        with db.write() as s:
            campaigns.store_decision(s, planned, T0)
    assert _count(db) == 50
