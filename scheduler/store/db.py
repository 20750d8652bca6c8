"""Engine and sessions: SQLite (WAL, busy timeout, BEGIN IMMEDIATE for writes) or PostgreSQL."""
from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # pysqlite's own implicit BEGIN is turned off so that we choose the kind of BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A write transaction takes the write lock at once, so it waits (busy timeout)
        # instead of failing when it later tries to upgrade a read lock.
        # Straight on the driver: this runs for every transaction of the release path, and
        # SQLAlchemy's statement machinery would cost more than SQLite's BEGIN itself.
        write = conn.get_execution_options().get("write")
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")


def _private_file(path: Path) -> None:
    """The database file readable by its owner only (SQLite gives its WAL and shared-memory
    files the database file's mode), created so if new, narrowed if an older one was not."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
        for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if extra.exists():
                os.chmod(extra, 0o600)


def make_engine(url: str) -> Engine:
    """Create the engine for a SQLAlchemy URL, creating the SQLite file's folder if needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            _private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


_writes = threading.local()


@contextmanager
def _writing_here(self_check: bool) -> Iterator[None]:
    outer = getattr(_writes, "checked", False)
    _writes.depth = getattr(_writes, "depth", 0) + 1
    _writes.checked = outer or self_check
    try:
        yield
    finally:
        _writes.depth -= 1
        _writes.checked = outer


def writing() -> bool:
    """Whether this thread is inside a write transaction (renders must not be: on SQLite
    every other writer would wait for them)."""
    return getattr(_writes, "depth", 0) > 0


def rowcount(result: Any) -> int:
    """How many rows an UPDATE or DELETE matched (Session.execute is typed as returning
    Result; a DML statement's result is a CursorResult)."""
    return cast(CursorResult, result).rowcount


def checked_writing() -> bool:
    """Whether this thread is inside a write transaction of a database whose invariants are
    checked as it runs (`Database.self_check`, from MAILRELEASE_SELF_CHECK)."""
    return writing() and getattr(_writes, "checked", False)


class Database:
    """Hands out sessions: `read()` for queries, `write()` for a committed transaction."""

    def __init__(self, url: str, self_check: bool = False):
        self.url = url
        # Set from the settings by the wiring: fail loudly where an invariant breaks.
        self.self_check = self_check
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._write_engine = self.engine.execution_options(write=True)
        # SQLite has one writer. Threads of this process queue on a lock instead of on
        # SQLite's busy handler, which sleeps in 1-100 ms steps and starved the senders
        # (a 100-account benchmark ran at 56% CPU, the rest spent asleep in that handler).
        self._write_lock = threading.RLock() if self.dialect == "sqlite" else nullcontext()
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; anything left uncommitted is rolled back."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with self._write_lock, _writing_here(self.self_check), self._write.begin() as session:
            yield session

    @contextmanager
    def core_read(self) -> Iterator[Connection]:
        """A Core connection for the release hot path (no ORM overhead)."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def core_write(self) -> Iterator[Connection]:
        """A Core connection in a write transaction, committed on success."""
        with self._write_lock, _writing_here(self.self_check), self._write_engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        """Close pooled connections (before fork, or at shutdown)."""
        self.engine.dispose()
