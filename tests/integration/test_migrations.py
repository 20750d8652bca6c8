"""The Alembic migrations and the SQLAlchemy models describe the same schema."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from scheduler.store.db import make_engine
from scheduler.store.migrate import upgrade
from scheduler.store.models import Base


def test_migrations_match_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
        assert diff == []
        assert "alembic_version" in inspect(conn).get_table_names()
    engine.dispose()


def test_upgrade_twice_is_harmless(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    upgrade(url)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_every_migration_downgrades_and_upgrades_again(tmp_path):
    from alembic import command

    from scheduler.store.migrate import alembic_config
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert "message" in inspect(conn).get_table_names()
    engine.dispose()


def test_contacts_at_internationalized_domains_are_migrated_to_idna(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from scheduler.store.migrate import alembic_config
    url = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0010")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO team (id, name, tracking, created_at) "
                          "VALUES (1, 't', 1, '2026-01-01 00:00:00')"))
        for n, address in enumerate(["jose@exämple.org", "josé@example.org", "a@b.org"]):
            conn.execute(text("INSERT INTO contact (id, team_id, email, attributes, "
                              "subscription, created_at, updated_at) VALUES (:i, 1, :e, "
                              "'{}', 'subscribed', '2026-01-01', '2026-01-01')"),
                         {"i": n + 1, "e": address})
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        emails = conn.execute(text("SELECT email FROM contact ORDER BY id")).scalars().all()
    assert emails == ["jose@xn--exmple-cua.org", "josé@example.org", "a@b.org"]
    engine.dispose()


def test_the_sqlite_files_are_private_to_their_owner(tmp_path):
    import stat
    url = f"sqlite:///{tmp_path / 'private.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:  # a write makes the WAL file
        conn.exec_driver_sql("CREATE TABLE t (x)")
        for name in ("private.db", "private.db-wal"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    engine.dispose()
