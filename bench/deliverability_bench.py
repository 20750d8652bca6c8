"""Deliverability benchmark: SpamAssassin scores of the product's mail as Gmail receives it.

    .venv/bin/python bench/deliverability_bench.py          # the figures in README

Every starter template, and a campaign message, is queued through the product (tracking
on, and again with tracking off) and sent by a real worker to the sandbox Google; the
bytes the sandbox accepted are scored with Debian's SpamAssassin (`spamassassin -L -t`,
local tests only: this machine has no network for DNS or URI blocklists). Each is scored
against two twins with the same rendered content:
  plain      Python's EmailMessage: set_content(text), add_alternative(html)
  mailmerge  the mail-merge CLI from PyPI (bench/.mailmerge-venv), --dry-run raw output
Goals (issue 16): no message scores above its plain twin; tracked short mail scores at
most 0.5 above the same mail untracked. Exits 1 when a goal is missed.
"""
from __future__ import annotations

import argparse
import base64
import email
import email.policy
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.merge_bench import mailmerge_bin
from bench.release_bench import Sandbox, deployment
from scheduler.audience import contacts
from scheduler.automation import campaigns
from scheduler.commands import NewCampaign, NewContact, NewMessage, NewTemplate
from scheduler.content import templates
from scheduler.content.personalize import render_message
from scheduler.content.starters import starters
from scheduler.engine import messages
from scheduler.store.db import utcnow
from scheduler.typed import make
from scheduler.wiring import Wiring
from scheduler.worker import ReleaseWorker
from tests.spamassassin import plain_twin, score

SENDER = "sender0@example.com"
TO = "reader@example.org"
SHORT_BYTES = 2000  # "short mail": HTML under this many bytes before tracking
CAMPAIGN = {"subject": "What's new at Acme this month, {{ first_name }}",
            "html": "<html><body><p>Hi {{ first_name }},</p><p>This month we shipped "
                    "<a href=\"https://acme.example.com/changelog\">three new reports</a> "
                    "and a faster export.</p><p>Thanks for being with us,<br>Acme</p>"
                    "</body></html>",
            "text": None, "amp": None}


def mailmerge_twin(subject: str, html: str, text: str, amp: str | None,
                   folder: Path) -> bytes:
    """The same rendered content sent through mailmerge (its dry run's raw output)."""
    amp_part = (f"--boundary\nContent-Type: text/x-amp-html; charset=utf-8\n\n"
                f"{{% raw %}}{amp}{{% endraw %}}\n" if amp else "")
    template = folder / "mm-template.txt"
    template.write_text(
        f"TO: {TO}\nFROM: Sender <{SENDER}>\nSUBJECT: {subject}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/alternative; boundary="boundary"\n\n'
        f"--boundary\nContent-Type: text/plain; charset=utf-8\n\n{{% raw %}}{text}"
        f"{{% endraw %}}\n{amp_part}--boundary\nContent-Type: text/html; charset=utf-8\n\n"
        f"{{% raw %}}{html}{{% endraw %}}\n--boundary--\n", encoding="utf-8")
    (folder / "mm.csv").write_text("email\nx@example.org\n", encoding="utf-8")
    (folder / "mm.conf").write_text("[smtp_server]\nhost = localhost\nport = 25\n"
                                    "security = Never\nratelimit = 0\n", encoding="utf-8")
    out = subprocess.run([str(mailmerge_bin()), "--template", str(template),
                          "--database", str(folder / "mm.csv"), "--config",
                          str(folder / "mm.conf"), "--dry-run", "--no-limit",
                          "--output-format", "raw"], capture_output=True, check=True,
                         cwd=folder).stdout
    body = out.split(b">>> message 1\n", 1)[1].split(b"\n>>> message 1 sent", 1)[0]
    return body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def queue_all(db, team_id: int, now) -> list[tuple[str, str, bool, dict]]:
    """(message id, name, tracked, parts) for every starter, tracked and not, and a
    campaign message; parts are the templates as queued."""
    queued = []
    for key, found in starters().items():
        if found["kind"] != "email":
            continue
        for tracked in (True, False):
            command = make(NewMessage, to=TO, subject=found["subject"], html=found["html"],
                           text=found["text"], amp=found["amp"], data=found["sample_data"],
                           transactional=found["transactional"], tracking=tracked)
            with db.read() as s:
                prepared = messages.prepare_message(s, team_id=team_id, user_id=1,
                                                    command=command, now=now)
            with db.write() as s:
                queued.append((messages.store_message(s, prepared).id, key, tracked,
                               {**found, "data": found["sample_data"]}))
    with db.write() as s:
        contacts.add_contacts(s, team_id, [make(NewContact, email="fan@example.org",
                                                attributes={"first_name": "Sam"})], now)
        template = templates.create_template(
            s, team_id=team_id, user_id=1, command=make(
                NewTemplate, name="news", subject=CAMPAIGN["subject"], html=CAMPAIGN["html"]),
            allowed_hosts=(), now=now)
        template_id = template.id
    with db.read() as s:
        prepared = campaigns.prepare_campaign(s, team_id, 1, make(
            NewCampaign, template_id=template_id), now)
    with db.write() as s:
        campaign = campaigns.store_campaign(s, prepared)
        s.flush()
        ids = [r["id"] for r in prepared.rows]
    queued.append((ids[0], f"campaign-{campaign.id}", True,
                   {**CAMPAIGN, "transactional": False,
                    "data": {"first_name": "Sam", "email": "fan@example.org"}}))
    return queued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", action="store_true", help="print every rule that hit")
    parser.parse_args()
    if shutil.which("spamassassin") is None:
        sys.exit("spamassassin is not installed: apt-get install spamassassin")
    version = subprocess.run(["spamassassin", "--version"], capture_output=True,
                             text=True).stdout.split("\n")[0]
    sandbox = Sandbox()
    worker = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            settings, _, db = deployment(sandbox, folder, 1,
                                         MAILRELEASE_PUBLIC_URL="https://mail.example.com")
            queued = queue_all(db, 1, utcnow())
            worker = ReleaseWorker(Wiring.build(settings, db))
            worker.start()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                sent = requests.get(sandbox.url + "/sandbox/api/messages", timeout=10).json()
                if len(sent["messages"]) >= len(queued):
                    break
                time.sleep(0.2)
            by_id = {}
            for m in sent["messages"]:
                raw = base64.urlsafe_b64decode(m["raw"] + "=" * (-len(m["raw"]) % 4))
                by_id[m["messageId"]] = raw
            rows = []
            with ThreadPoolExecutor(max_workers=2) as pool:
                for mid, name, tracked, parts in queued:
                    raw = by_id[f"<mr.{mid}@example.com>"]
                    received = email.message_from_bytes(raw, policy=email.policy.default)
                    rendered = render_message(parts["subject"], parts["html"], parts["text"],
                                              {**parts["data"], "unsubscribe_url": ""},
                                              amp=parts["amp"])
                    content = (rendered.subject, rendered.html, rendered.text, rendered.amp)
                    twins = ([plain_twin(*content, received), mailmerge_twin(*content, folder)]
                             if tracked else [])
                    rows.append((name, tracked, len(rendered.html.encode()),
                                 [pool.submit(score, r) for r in (raw, *twins)]))
            print(f"deliverability spamassassin={version!r} local_tests=1 "
                  f"messages={len(rows)}", flush=True)
            missed = []
            untracked = {name: f[0].result()[0] for name, tracked, _, f in rows if not tracked}
            for name, tracked, size, futures in rows:
                if not tracked:
                    continue
                (ours, rules), (plain, plain_rules), (mm, mm_rules) = \
                    [f.result() for f in futures]
                off = untracked.get(name)
                extra = sorted(set(rules) - set(plain_rules))
                if "--rules" in sys.argv:
                    off_rules = next(f[0].result()[1] for n, t, _, f in rows
                                     if n == name and not t) if off is not None else []
                    print("  ours", rules, "\n  untracked", off_rules, "\n  plain",
                          plain_rules, "\n  mailmerge", mm_rules)
                print(f"deliverability {name:24} ours={ours:5.1f} untracked="
                      f"{'-' if off is None else f'{off:.1f}':>4} plain={plain:5.1f} "
                      f"mailmerge={mm:5.1f} html_bytes={size} "
                      f"rules_beyond_plain={','.join(extra) or '-'}", flush=True)
                if ours > plain + 1e-9:
                    missed.append(f"{name}: {ours} above its plain twin's {plain}")
                if off is not None and size < SHORT_BYTES and ours - off > 0.5 + 1e-9:
                    missed.append(f"{name}: tracked {ours} is more than 0.5 above "
                                  f"untracked {off}")
            print(f"deliverability goals_missed={len(missed)}", flush=True)
            for line in missed:
                print(f"  {line}", flush=True)
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-sandbox":
        from bench.release_bench import serve_sandbox
        serve_sandbox(int(sys.argv[2]))
    else:
        main()
