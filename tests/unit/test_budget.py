"""The template budget: hostile templates end quickly with the limit named, never a hang,
a 20 MB answer or an unhandled error."""
from __future__ import annotations

import time

import pytest

from scheduler.content.personalize import render_message
from scheduler.errors import MissingData, RenderError

HOSTILE = {
    "nested loops": "{% for i in range(100000) %}{% for j in range(1200) %}{% endfor %}"
                    "{% endfor %}",
    "string times n": '{% set n=10000000 %}{{ "x"*n }}',
    "list times n": "{{ ([1] * 10000000) | length }}",
    "recursive macro": "{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}",
    "str.ljust": '{{ "x".ljust(100000000) }}',
    "center filter": '{{ "x"|center(100000000) }}',
    "printf width": '{{ "%*s" % (100000000, "") }}',
    "huge exponent": "{{ 2 ** 100000000 }}",
    "output size": '{% for i in range(2000) %}{{ "y" * 999 }}{% endfor %}',
    "division": "{{ 1/0 }}", "str plus int": '{{ "a"+1 }}', "pop": "{{ [].pop() }}",
    "huge range": "{{ range(10**9) }}", "include": '{% include "x" %}',
    "import": '{% import "x" as y %}', "extends": '{% extends "x" %}',
    "format_map": "{{ '{0.__class__}'.format_map([]) }}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_template_fails_fast_naming_the_part(name):
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render_message("S", "<p>hi</p>\n" + HOSTILE[name], None, {})
    # The output limit is the whole part's; every other limit is met on its line.
    assert caught.value.field == "html"
    assert caught.value.line == (None if name == "output size" else 2)
    assert time.monotonic() - started < 1.0  # well inside the 2 s render limit


def test_lipsum_is_not_offered():
    with pytest.raises(MissingData):
        render_message("S", "{{ lipsum(2, false, 1, 1) }}", None, {})


def test_ordinary_templates_are_untouched_by_the_budget():
    items = [{"name": f"p{n}", "price": n} for n in range(500)]
    parts = render_message(
        "Hi {{ name }}", "{% for i in items %}<li>{{ i.name }}: {{ '%5.2f' % i.price }}"
        "{% endfor %}{{ '-' * 40 }}{{ 2 ** 10 }}", None, {"name": "Ann", "items": items})
    assert parts.subject == "Hi Ann" and parts.html.count("<li>") == 500
    assert "1024" in parts.html


def test_a_render_inside_a_checked_write_transaction_fails_loudly(db):
    with db.read():
        assert render_message("Hi {{ n }}", "<p>x</p>", "x", {"n": "Ada"}).subject == "Hi Ada"
    db.self_check = True
    with db.write(), pytest.raises(AssertionError, match="inside a write transaction"):
        render_message("Hi {{ n }}", "<p>x</p>", "x", {"n": "Ada"})
    db.self_check = False
    with db.write():  # unchecked (production default): allowed, only slower for others
        assert render_message("Hi {{ n }}", "<p>x</p>", "x", {"n": "Ada"}).subject == "Hi Ada"
