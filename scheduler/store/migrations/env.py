"""Alembic environment: runs migrations online against the configured URL."""
from alembic import context
from sqlalchemy import text

from scheduler.store.db import make_engine
from scheduler.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run under one connection; PostgreSQL takes an advisory lock so parallel starts queue."""
    url = config.attributes.get("database_url")
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(str(url))
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(7261001)"))
            try:
                _run(conn)
            finally:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(7261001)"))
                    conn.commit()
    finally:
        engine.dispose()


def _run(conn) -> None:
    context.configure(connection=conn, target_metadata=target_metadata,
                      render_as_batch=conn.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
