"""Contacts import benchmark: a 100,000-row CSV into SQLite through `mailrelease contacts
import` (the CLI, with its progress bar), then the same file again (all updates).

    .venv/bin/python bench/contacts_bench.py             # the figures in README
    .venv/bin/python bench/contacts_bench.py --rows 20000
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.audience import accounts
from scheduler.settings import Settings
from scheduler.store.crypto import TokenCipher
from scheduler.store.db import Database, utcnow
from scheduler.store.migrate import upgrade


def write_csv(path: Path, rows: int) -> None:
    zones = ["Europe/Paris", "America/New_York", "Asia/Tokyo", ""]
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        out = csv.writer(f)
        out.writerow(["Email", "Name", "Time zone", "plan", "city", "signed_up"])
        for i in range(rows):
            out.writerow([f"person{i}@example.org", f"Person {i}", zones[i % 4],
                          ("free", "pro", "team")[i % 3], f"City, {i % 100}",
                          f"2026-0{i % 9 + 1}-1{i % 10}"])


def run(folder: Path, csv_path: Path, env: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app", "contacts", "import", str(csv_path),
                           "--email", "bench@example.com"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "MAILRELEASE_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
               "MAILRELEASE_INSTANCE_PATH": str(folder / "instance")}
        settings = Settings.from_env(instance_path=folder / "instance", env=env)
        env["MAILRELEASE_TOKEN_KEY"] = settings.token_key
        upgrade(settings.database_url)
        db = Database(settings.database_url)
        with db.write() as s:  # the user whose team receives the contacts
            accounts.sign_in(s, TokenCipher(settings.token_key), email="bench@example.com",
                             token_info={"token": "t", "refresh_token": "r"}, scopes=[],
                             now=utcnow())
        db.dispose()
        csv_path = folder / "contacts.csv"
        write_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        for label in ("new", "again"):
            wall, report = run(folder, csv_path, env)
            print(f"import rows={args.rows} file_mb={size_mb:.1f} pass={label} "
                  f"wall_s={wall:.1f} rows_per_s={args.rows / wall:.0f} "
                  f"imported={report['imported']} updated={report['updated']} "
                  f"rejected={len(report['rejected'])}", flush=True)


if __name__ == "__main__":
    main()
