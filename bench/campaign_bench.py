"""Campaign queueing: a campaign to 10,000 contacts, timed from the API call to its answer
(every message created and committed), on SQLite.

    .venv/bin/python bench/campaign_bench.py             # the figure in README
    .venv/bin/python bench/campaign_bench.py --contacts 2000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.audience import accounts, contacts
from scheduler.automation import campaigns
from scheduler.commands import NewCampaign, NewTemplate
from scheduler.content import templates
from scheduler.settings import Settings
from scheduler.store.crypto import TokenCipher
from scheduler.store.db import Database, utcnow
from scheduler.store.migrate import upgrade
from scheduler.typed import make


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = Settings.from_env(instance_path=folder / "instance", env={
            "MAILRELEASE_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}"})
        upgrade(settings.database_url)
        db = Database(settings.database_url)
        with db.write() as s:
            who = accounts.sign_in(s, TokenCipher(settings.token_key),
                                   email="bench@example.com",
                                   token_info={"token": "t", "refresh_token": "r"},
                                   scopes=[], now=utcnow())
            tid = templates.create_template(
                s, team_id=who.team_id, user_id=who.user_id, allowed_hosts=(), now=utcnow(),
                command=make(NewTemplate, name="news",
                             subject="News for {{ name | default('you') }}",
                             html="<p>Hi {{ name | default('there') }}, your plan: "
                                  "{{ plan | default('free') }}</p>")).id
        rows = "email,name,plan\n" + "".join(f"p{i}@example.org,Person {i},pro\n"
                                             for i in range(args.contacts))
        import io
        contacts.import_csv(db, who.team_id, io.BytesIO(rows.encode()), utcnow())
        for label, body in (("plain", {"template_id": tid}),
                            ("ab", {"template_id": tid, "variants": [
                                {"key": "A"}, {"key": "B", "subject": "Big news"}],
                                "ab": {"test_fraction": 1.0}})):
            started = time.perf_counter()
            with db.read() as s:  # rendered before the write transaction, as the API does
                prepared = campaigns.prepare_campaign(s, who.team_id, who.user_id,
                                                      make(NewCampaign, **body), utcnow())
            with db.write() as s:
                campaign = campaigns.store_campaign(s, prepared)
                queued = campaign.counts["queued"]
            wall = time.perf_counter() - started
            print(f"campaign kind={label} contacts={args.contacts} queued={queued} "
                  f"wall_s={wall:.2f} per_s={queued / wall:.0f}", flush=True)
        db.dispose()


if __name__ == "__main__":
    main()
