"""Personalization benchmark: 10,000 recipients from a CSV, rendered and built as MIME.

    .venv/bin/python bench/merge_bench.py            # the figures in README
    .venv/bin/python bench/merge_bench.py --rows 2000

Both sides run pinned to one core, and do the same work per recipient: read the CSV row,
render a subject, a plain-text and an HTML part with Jinja2, and produce the complete
RFC 5322 message.
  mailrelease  scheduler.content.personalize.render_message + gmail_client.mime.build_message,
               with the sandboxed environment, autoescaping and StrictUndefined on.
  mailmerge    the mail-merge CLI from PyPI (installed into bench/.mailmerge-venv on first
               use), `--dry-run --no-limit --output-format raw`, output to /dev/null.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gmail_client.mime import build_message
from scheduler.content.personalize import render_message

MAILMERGE_VENV = ROOT / "bench" / ".mailmerge-venv"
MAILMERGE_SPEC = "mailmerge>=2.2,<3"
RUNS = 3

SUBJECT = "Your order {{ order }} has shipped, {{ name }}"
TEXT = """Hi {{ name }},

Your order {{ order }} ({{ items }} items, {{ total }}) left our warehouse today.
Track it at https://shop.example.com/track/{{ order }}.

Thanks for shopping with us!
"""
HTML = """<html><body>
<p>Hi {{ name }},</p>
<p>Your order <strong>{{ order }}</strong> ({{ items }} items, {{ total }}) left our warehouse
today. <a href="https://shop.example.com/track/{{ order }}">Track it</a>.</p>
<p>Thanks for shopping with us!</p>
</body></html>
"""
# The same message as a mailmerge template: headers, then a multipart/alternative body.
MAILMERGE_TEMPLATE = f"""TO: {{{{email}}}}
FROM: Shop <shop@example.com>
SUBJECT: {SUBJECT}
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="boundary"

--boundary
Content-Type: text/plain; charset=utf-8

{TEXT}
--boundary
Content-Type: text/html; charset=utf-8

{HTML}
--boundary--
"""


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["email", "name", "order", "items", "total"])
        for i in range(rows):
            out.writerow([f"customer{i}@example.org", f"Customer {i}", f"A-{100000 + i}",
                          i % 7 + 1, f"${(i % 50) * 3 + 9}.00"])


def pin_to_one_core() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def ours(csv_path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    count = 0
    with csv_path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            parts = render_message(SUBJECT, HTML, TEXT, row)
            build_message(sender=("Shop", "shop@example.com"), to=("", row["email"]),
                          subject=parts.subject, html=parts.html, text=parts.text,
                          message_id=f"<mr.{count}@example.com>", date=now)
            count += 1
    return count, time.perf_counter() - started


def mailmerge_bin() -> Path:
    exe = MAILMERGE_VENV / "bin" / "mailmerge"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MAILMERGE_VENV)], check=True)
        subprocess.run([str(MAILMERGE_VENV / "bin" / "pip"), "install", "-q", MAILMERGE_SPEC],
                       check=True)
    return exe


def theirs(csv_path: Path, folder: Path) -> tuple[int, float, str]:
    exe = mailmerge_bin()
    template = folder / "template.txt"
    template.write_text(MAILMERGE_TEMPLATE, encoding="utf-8")
    config = folder / "server.conf"
    config.write_text("[smtp_server]\nhost = localhost\nport = 25\nsecurity = Never\n"
                      "ratelimit = 0\n", encoding="utf-8")
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run([str(exe), "--template", str(template), "--database", str(csv_path),
                        "--config", str(config), "--dry-run", "--no-limit",
                        "--output-format", "raw"], stdout=sink, check=True, cwd=folder,
                       preexec_fn=pin_to_one_core)
    wall = time.perf_counter() - started
    with csv_path.open(newline="", encoding="utf-8") as f:
        count = sum(1 for _ in csv.DictReader(f))
    return count, wall, version


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    pin_to_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "recipients.csv"
        write_csv(csv_path, args.rows)
        ours(csv_path)  # warm: templates compiled, modules imported
        # This machine's speed drifts: each side runs RUNS times and the median counts.
        walls = sorted(ours(csv_path)[1] for _ in range(RUNS))
        count, wall = args.rows, walls[RUNS // 2]
        print(f"merge mailrelease recipients={count} runs={RUNS} median_wall_s={wall:.2f} "
              f"messages_per_s={count / wall:.0f}", flush=True)
        theirs_runs = sorted((theirs(csv_path, folder) for _ in range(RUNS)),
                             key=lambda r: r[1])
        their_count, their_wall, version = theirs_runs[RUNS // 2]
        print(f"merge mailmerge({version}) recipients={their_count} runs={RUNS} "
              f"median_wall_s={their_wall:.2f} "
              f"messages_per_s={their_count / their_wall:.0f}", flush=True)
        print(f"merge speedup={(count / wall) / (their_count / their_wall):.1f}x", flush=True)


if __name__ == "__main__":
    main()
