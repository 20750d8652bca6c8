"""Mail as Gmail receives it scores no worse with SpamAssassin than the same content as a
plain EmailMessage, and tracking a short message costs it nothing (the full table of
every starter is bench/deliverability_bench.py)."""
from __future__ import annotations

import base64
import email
import email.policy

import pytest

from scheduler.content.personalize import render_message
from scheduler.content.starters import starter
from tests.helpers import wait_for
from tests.spamassassin import plain_twin, score

# A short one without images (the open pixel would be its only image), one with an AMP
# part (its vocabulary is compared with the HTML's), and a receipt.
STARTERS = ("welcome", "abandoned-cart", "order-confirmation")


def _sent_raw(live, message_id_header: str) -> bytes:
    for m in live.sandbox.sent():
        if m["messageId"] == message_id_header:
            return base64.urlsafe_b64decode(m["raw"] + "=" * (-len(m["raw"]) % 4))
    raise AssertionError(f"{message_id_header} was not sent")


def _send(live, api, found: dict, tracking: bool) -> bytes:
    made = api.post(f"{live.url}/api/v1/messages", json={
        "to": "reader@example.org", "subject": found["subject"], "html": found["html"],
        "text": found["text"], "amp": found["amp"], "data": found["sample_data"],
        "transactional": found["transactional"], "tracking": tracking}).json()
    done = wait_for(lambda: (b := api.get(f"{live.url}/api/v1/messages/{made['id']}")
                             .json())["status"] == "sent" and b, 20)
    return _sent_raw(live, done["message_id_header"])


@pytest.mark.parametrize("key", STARTERS)
def test_a_starter_as_sent_scores_no_worse_than_its_plain_twin(serve, key):
    # Links on an https domain of the sender's, as deployed (not a loopback address).
    live = serve(MAILRELEASE_TRACKING_URL="https://t.mail.example.com")
    api = live.user()
    found = starter(key)
    tracked = _send(live, api, found, True)
    untracked = _send(live, api, found, False)
    parts = render_message(found["subject"], found["html"], found["text"],
                           {**found["sample_data"], "unsubscribe_url": ""}, amp=found["amp"])
    received = email.message_from_bytes(tracked, policy=email.policy.default)
    twin = plain_twin(parts.subject, parts.html, parts.text, parts.amp, received)
    (ours, rules), (plain, plain_rules), (off, _) = (score(tracked), score(twin),
                                                     score(untracked))
    assert ours <= plain, (ours, plain, sorted(set(rules) - set(plain_rules)))
    assert ours - off <= 0.5, (ours, off, rules)
