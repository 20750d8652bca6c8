"""The release path's steps that stop before Gmail, with the clock given: a claim later than
the lateness limit and a follow-up whose first step is not sent are settled by `prepare`
without a Gmail call (the OAuth client here points nowhere; no socket is opened)."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from gmail_client.oauth import ClientConfig
from scheduler.content.links import Links
from scheduler.content.sources import ContentFetcher
from scheduler.engine.connections import Gmail
from scheduler.engine.release import Batch, Releaser
from scheduler.settings import Settings
from scheduler.store import queue
from scheduler.store.crypto import TokenCipher
from scheduler.store.models import GmailAccount
from tests.unit.conftest import T0, add_message, row

CLIENT = ClientConfig("web", "id", "secret", "https://auth.invalid/", "https://token.invalid/",
                      ())


@pytest.fixture
def releaser_at(db, tmp_path):
    """A Releaser on the unit database whose clock reads the given time."""
    settings = Settings.from_env(instance_path=tmp_path / "instance", env={
        "MAILRELEASE_DATABASE_URL": db.url, "MAILRELEASE_MAX_LATENESS_SECONDS": "3600"})
    cipher = TokenCipher(settings.token_key)
    with db.write() as s:
        s.execute(update(GmailAccount).values(
            token_blob=cipher.encrypt({"token": "t", "refresh_token": "r"}),
            scopes="https://www.googleapis.com/auth/gmail.send"))

    def make(now: dt.datetime) -> Releaser:
        return Releaser(db, settings, Gmail(settings, cipher, lambda: CLIENT),
                        ContentFetcher(()), Links(settings.secret_key, "https://m.example"),
                        clock=lambda: now)
    return make


def _claim(db, now):
    with db.core_write() as conn:
        return queue.claim_due(conn, now, 60, 10)[0]


def test_a_claim_later_than_the_lateness_limit_is_held_not_sent(db, releaser_at):
    mid = add_message(db, release_at=T0)
    late = T0 + dt.timedelta(hours=2)
    assert releaser_at(late).release(_claim(db, late)) == "held"
    message = row(db, mid)
    assert message.status == "held" and message.hold_kind == "too_late"
    assert late.isoformat() in message.error


def test_a_follow_up_waits_for_its_first_step_and_is_skipped_once_that_failed(db,
                                                                              releaser_at):
    first = add_message(db, release_at=T0 + dt.timedelta(days=1))
    follow = add_message(db, release_at=T0, follows_id=first)
    batch = Batch()
    assert releaser_at(T0).release(_claim(db, T0), batch) == "retry_wait"
    assert row(db, follow).status == "retry_wait" and batch.unrecorded == []
    with db.write() as s:
        queue.transition(s, first, 1, "cancel", T0, {"by": "test"})
    again = T0 + dt.timedelta(hours=1)
    assert releaser_at(again).release(_claim(db, again)) == "cancelled"
    assert "previous step was not sent" in row(db, follow).error
