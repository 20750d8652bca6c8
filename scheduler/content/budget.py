"""A template budget: Jinja's sandbox, with limits on what one render may cost.

The sandbox stops a template reaching Python's internals; this stops it spending the
machine. Per render of one part: at most MAX_OUTPUT characters out, MAX_STEPS loop
iterations, calls and operators together, calls nested MAX_DEPTH deep, and
RENDER_SECONDS of time, checked at every step (enforced, not advisory); no operator or
string method may build a value larger than the output budget (`"x" * 10**8`,
`"x".ljust(10**8)`, `10 ** 10**6`). Going over raises OverBudget, which names the limit.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from scheduler.store.db import checked_writing

MAX_OUTPUT = 1_000_000
MAX_STEPS = 200_000
MAX_DEPTH = 50
RENDER_SECONDS = 2.0
MAX_EXPONENT = 1_000
# Filters whose integer arguments are widths: a huge one builds a huge string.
_WIDTH_FILTERS = ("center", "indent", "truncate", "wordwrap", "batch", "slice")
_LOOP_GUARD = "mr_budget_loop_"


class OverBudget(Exception):
    """A render went over one of the limits (the message says which)."""


class _Spent(threading.local):
    """What the render running on this thread has used."""

    def __init__(self):
        self.active = False
        self.steps = 0
        self.depth = 0
        self.deadline = 0.0


_spent = _Spent()


@contextmanager
def rendering() -> Iterator[None]:
    """A fresh budget for the render that runs inside (one part of one message)."""
    outer = (_spent.active, _spent.steps, _spent.depth, _spent.deadline)
    _spent.active, _spent.steps, _spent.depth = True, 0, 0
    _spent.deadline = time.monotonic() + RENDER_SECONDS
    try:
        yield
    finally:
        _spent.active, _spent.steps, _spent.depth, _spent.deadline = outer


def step() -> None:
    """Count one step of the running render; OverBudget past its steps or its time."""
    if not _spent.active:
        return
    _spent.steps += 1
    if _spent.steps > MAX_STEPS:
        raise OverBudget(f"more than {MAX_STEPS:,} loop iterations and calls")
    if _spent.steps % 64 == 0 and time.monotonic() > _spent.deadline:
        raise OverBudget(f"longer than {RENDER_SECONDS:g} s to render")


def _too_big(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT


def _counted(iterable):
    for item in iterable:
        step()
        yield item


def _guard_filter(name: str, func):
    def guarded(*args, **kwargs):
        if any(_too_big(a) for a in (*args[1:], *kwargs.values())):
            raise OverBudget(f"the {name} filter's width is larger than the "
                             f"{MAX_OUTPUT:,}-character output limit")
        return func(*args, **kwargs)
    if hasattr(func, "jinja_pass_arg"):  # keep how Jinja passes context/environment
        guarded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return guarded


class BudgetedEnvironment(SandboxedEnvironment):
    """Jinja's SandboxedEnvironment with the budget above on every render."""

    intercepted_binops = frozenset(["*", "**", "%", "+"])

    def __init__(self, **options):
        super().__init__(**options)
        self.globals.pop("lipsum", None)  # paragraphs by the thousand, for nothing
        self.globals[_LOOP_GUARD] = _counted
        for name in _WIDTH_FILTERS:
            if name in self.filters:
                self.filters[name] = _guard_filter(name, self.filters[name])

    def _parse(self, source, name, filename):
        # Every {% for %} iterates through the step counter.
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name(_LOOP_GUARD, "load"), [loop.iter], [],
                                   None, None, lineno=loop.lineno)
        return tree

    def call_binop(self, context, operator, left, right):
        """Refuse an operator whose result would pass the output budget."""
        step()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) \
                        and len(seq) * times > MAX_OUTPUT:
                    raise OverBudget(f"a value of more than {MAX_OUTPUT:,} characters "
                                     f"or items")
        elif operator == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise OverBudget(f"an exponent larger than {MAX_EXPONENT:,}")
        elif operator == "%" and isinstance(left, str):
            values = right if isinstance(right, (tuple, list)) else (right,)
            if any(_too_big(v) for v in values) and "*" in left:
                raise OverBudget(f"a width larger than the {MAX_OUTPUT:,}-character "
                                 f"output limit")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's signature
        """Count the call and its depth; refuse a width argument past the budget."""
        step()
        if _spent.active and getattr(__obj, "__self__", None).__class__ is str and any(
                _too_big(a) for a in (*args, *kwargs.values())):
            raise OverBudget(f"a string of more than {MAX_OUTPUT:,} characters")
        _spent.depth += 1
        try:
            if _spent.depth > MAX_DEPTH:
                raise OverBudget(f"calls nested more than {MAX_DEPTH} deep (a recursive "
                                 f"macro?)")
            return super().call(__context, __obj, *args, **kwargs)
        finally:
            _spent.depth -= 1


def render(template, data: dict) -> str:
    """Render a compiled template of a BudgetedEnvironment within the budget."""
    if checked_writing():
        raise AssertionError("a template was rendered inside a write transaction")
    with rendering():
        out, size = [], 0
        for chunk in template.generate(data):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise OverBudget(f"more than {MAX_OUTPUT:,} characters of output")
            out.append(chunk)
        return "".join(out)
