"""PostgreSQL: the same schema, SKIP LOCKED claims, and many workers sending thousands."""
from __future__ import annotations

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from scheduler.store import queue
from scheduler.store.db import Database, utcnow
from scheduler.store.migrate import upgrade
from scheduler.store.models import Base
from tests.acceptance.test_crash import assert_exactly_once, crash_and_recover, queue_messages


def test_migrations_match_models_on_postgres(pg_url):
    import importlib
    upgrade(pg_url)
    db = Database(pg_url)
    # The text-search indexes exist on PostgreSQL alone (pg_trgm), made by their migration.
    search = importlib.import_module(
        "scheduler.store.migrations.versions.0019_text_search_indexes_on_postgresql").INDEXES
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
        assert [d for d in diff if not (d[0] == "remove_index" and d[1].name in search)] == []
        found = {r[0] for r in conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE right(indexname, 5) = '_trgm'")}
        assert found == set(search)
    db.dispose()


def test_times_round_trip_as_aware_utc_on_postgres(serve, pg_url):
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url)
    api = live.user()
    send_at = "2031-06-01T09:00:00+09:00"
    body = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "h", "send_at": send_at}).json()
    assert body["release_at"] == "2031-06-01T00:00:00+00:00"


def test_concurrent_claims_skip_locked_rows_instead_of_waiting(serve, pg_url):
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url)
    senders = ["ada@example.com"]
    live.sign_in(senders[0])
    queue_messages(live, senders, 10)
    first = live.db.write()
    s1 = first.__enter__()
    claims_a = queue.claim_due(s1, utcnow(), 60, 4)  # transaction still open: rows locked
    with live.db.write() as s2:
        claims_b = queue.claim_due(s2, utcnow(), 60, 100)
    first.__exit__(None, None, None)
    a = {c.message_id for c in claims_a}
    b = {c.message_id for c in claims_b}
    assert len(a) == 4 and len(b) == 6 and not a & b


def test_workers_on_postgres_send_thousands_exactly_once_through_sigkills(serve, pg_url,
                                                                          tmp_path):
    live = serve(with_worker=False, MAILRELEASE_DATABASE_URL=pg_url)
    senders = [f"user{n}@example.com" for n in range(10)]
    for email in senders:
        live.sign_in(email)
    live.sandbox.configure(send_latency=0.002)
    started = dt.datetime.now()
    ids = queue_messages(live, senders, 2000)
    crash_and_recover(live, ids, tmp_path, workers=3, kills=2)
    assert_exactly_once(live, ids)
    assert (dt.datetime.now() - started).total_seconds() < 600


def test_segment_counts_in_sql_agree_with_the_rules_on_postgres(pg_url):
    """PostgreSQL reads JSON text with ->>, SQLite with json_extract: both must count a
    segment as the rules' own matching does."""
    from scheduler.store.models import Team
    from tests.unit.test_web_app_rules import segment_counts_agree
    upgrade(pg_url)
    db = Database(pg_url)
    with db.write() as s:
        team = Team(name="t", created_at=utcnow())
        s.add(team)
        s.flush()
        team_id = team.id
    segment_counts_agree(db, team_id)
    db.dispose()
