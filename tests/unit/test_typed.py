"""Typed commands: what a refusal names, and the limits every way in shares."""
from __future__ import annotations

import pytest

from scheduler import commands
from scheduler.errors import InvalidInput
from scheduler.store import lookup
from scheduler.typed import make, parse

OK = {"to": "a@example.org", "subject": "S", "html": "<p>h</p>"}


@pytest.mark.parametrize("body, field, words", [
    ({**OK, "data": {"items": [1, {"price": float("nan")}]}}, "data.items[1].price", "finite"),
    ({**OK, "data": {"s": ["\x00"]}}, "data.s[0]", "NUL"),
    ({**OK, "subject": "\ud800"}, "subject", "surrogate"),
    ({**OK, "send_at": "9999-12-31T23:30-01:00"}, "send_at", "2100"),
    ({**OK, "to": "a@example.org, b@example.org"}, "to", "one"),
    ({**OK, "to": "josé@example.org"}, "to", "before the @"),
    ({**OK, "bogus": 1}, "bogus", "not a field"),
    ({**OK, "delay_seconds": True}, "delay_seconds", "number"),
    ({**OK, "delay_seconds": "5"}, "delay_seconds", "number"),
    ({**OK, "delay_seconds": 1e300}, "delay_seconds", "less than"),
    ({**OK, "delay_seconds": 5, "local_time": {"time": "09:00"}}, "local_time", "only one"),
    ({**OK, "local_time": {"time": "29:00"}}, "local_time.time", "09:00"),
    ({**OK, "window": {"days": ["mon", "xx"]}}, "window.days[1]", "'mon'"),
    ({**OK, "template_id": 10 ** 30}, "template_id", "less than"),
    ({"to": "a@example.org", "html": "x", "template_id": 5}, "html", "not both"),
    ({"to": "a@example.org", "html": "x"}, "subject", "required"),
])
def test_a_refused_message_names_the_field(body, field, words):
    with pytest.raises(InvalidInput) as caught:
        parse(commands.NewMessage, body)
    assert caught.value.field == field and words in caught.value.message


def test_of_a_union_the_alternative_that_matched_furthest_is_named():
    with pytest.raises(InvalidInput) as caught:
        parse(commands.NewCampaign, {"template_id": 1, "audience": {"contact_ids": ["x"]}})
    assert caught.value.field == "audience.contact_ids[0]"
    with pytest.raises(InvalidInput) as caught:
        parse(commands.NewCampaign, {"audience": {"filter": [{"field": "x", "op": "equals",
                                                              "value": 1}]}})
    assert caught.value.field == "audience.filter[0].field"


def test_commands_built_in_code_are_refused_the_same_way():
    with pytest.raises(InvalidInput) as caught:
        make(commands.NewMessage, to="x@example.org", subject="S", html="h",
             data={"bad": "\x00"})
    assert caught.value.field == "data.bad"


def test_a_valid_message_keeps_its_values_typed():
    made = parse(commands.NewMessage, {**OK, "from": "Me <me@exämple.org>",
                                       "send_at": "2026-01-01T09:00:00+09:00"})
    assert made.sender == "Me <me@xn--exmple-cua.org>"
    assert made.send_at.isoformat() == "2026-01-01T00:00:00+00:00"
    assert made.timing() == {"send_at": made.send_at}


@pytest.mark.parametrize("raw, expected", [
    ("12", 12), (12, 12), ("1\x1c", None), (" 1", None), ("1 ", None), ("³", None),
    ("0", None), (str(2 ** 31), None), (True, None), ("-1", None), ("1e3", None)])
def test_a_path_id_is_ascii_digits_and_nothing_else(raw, expected):
    assert lookup.path_id(raw) == expected
