"""A private PostgreSQL cluster from Debian's binaries, for the test suite and the
benchmarks: started in a temporary folder (as the postgres user when run as root), with
durability off (it holds nothing worth keeping), and removed afterwards."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import free_port


def binaries() -> str | None:
    """The folder of pg_ctl and initdb, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(candidates[-1]) if candidates else None


@contextmanager
def private_cluster(max_connections: int = 200) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """(server URL without a database, {"stop", "start", "status"} commands)."""
    bindir = binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found: install Debian's "
                           "`postgresql` package")
    # Not under pytest's tmp folder: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="mailrelease-pg-"))
    as_postgres = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    subprocess.run(as_postgres + [f"{bindir}/initdb", "-D", str(data), "-A", "trust",
                                  "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    port = free_port()
    options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
               f"-c synchronous_commit=off -c full_page_writes=off "
               f"-c max_connections={max_connections}")
    start = as_postgres + [f"{bindir}/pg_ctl", "-D", str(data), "-o", options,
                           "-l", str(base / "server.log"), "-w", "start"]
    subprocess.run(start, check=True, capture_output=True)
    control = {"stop": as_postgres + [f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast",
                                      "-w", "stop"], "start": start,
               "status": as_postgres + [f"{bindir}/pg_ctl", "-D", str(data), "status"]}
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}", control
    finally:
        subprocess.run(as_postgres + [f"{bindir}/pg_ctl", "-D", str(data), "-m",
                                      "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def new_database(server: str) -> str:
    """A fresh, empty database on `server`; its URL."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool
    name = f"mr_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT",
                          poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"
