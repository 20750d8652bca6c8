"""The unit tier: the queue's invariants on a real SQLite file, with the clock given."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from scheduler.store.db import Database
from scheduler.store.models import Base, GmailAccount, Message, Team, User

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(tmp_path):
    """An empty schema in a fresh SQLite file, with one team, user and Gmail account."""
    database = Database(f"sqlite:///{tmp_path / 'unit.db'}")
    Base.metadata.create_all(database.engine)
    with database.write() as s:
        team = Team(name="t", created_at=T0)
        s.add(team)
        s.flush()
        user = User(email="ada@example.com", personal_team_id=team.id, created_at=T0)
        s.add(user)
        s.flush()
        s.add(GmailAccount(team_id=team.id, user_id=user.id, email="ada@example.com",
                           token_blob=b"x", scopes="", status="connected", created_at=T0))
    yield database
    database.dispose()


def add_message(db: Database, status: str = "scheduled", release_at: dt.datetime = T0,
                **values) -> str:
    """A message row in `status`, due at `release_at`; returns its id."""
    mid = uuid.uuid4().hex
    with db.write() as s:
        s.add(Message(id=mid, team_id=1, account_id=1, to_addr="x@example.org",
                      from_addr="ada@example.com", subject_tpl="S", html_tpl="h",
                      status=status, release_at=release_at, rfc822_id=f"<{mid}@example.com>",
                      data={}, created_at=T0, updated_at=T0, **values))
    return mid


def row(db: Database, mid: str) -> Message:
    """The message as stored now."""
    with db.read() as s:
        return s.get(Message, mid)


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch):
    """The unit tier opens no connection: a test that tries fails at once, naming the tier."""
    import socket

    def refuse(self, address):
        raise RuntimeError(f"unit tests open no sockets (tried {address!r}): move the test to "
                           f"tests/integration")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
