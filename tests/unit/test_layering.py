"""The rule of imports, read from the source with `ast` (a lazy import inside a function
counts too):

- packages: app → scheduler → gmail_client, never back; only app and the sandbox
  Google (which imports nothing of ours) import Flask;
- inside scheduler, each room imports only the rooms before it in ROOMS, the shared words
  import only each other, and the composition modules (wiring, worker) may import any.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What each package may import of ours (and of Flask).
ALLOWED = {"app": {"app", "scheduler", "gmail_client", "sandbox", "flask"},
           "scheduler": {"scheduler", "gmail_client"},
           "gmail_client": {"gmail_client"},
           # The sandbox Google is a stand-in for Google: Flask, and nothing of ours.
           "sandbox": {"sandbox", "flask"}}
OURS = {"app", "scheduler", "gmail_client", "sandbox", "flask", "flask_wtf", "werkzeug"}
ROOMS = ("store", "timing", "content", "audience", "engine", "delivery", "automation")
WORDS = {"errors", "sanity", "typed", "commands", "addresses", "settings", "redact"}
COMPOSITION = {"wiring", "worker"}
# The rooms that may use the Gmail client (content reads a draft through a given service).
GMAIL = {"content", "engine", "delivery", "automation"} | COMPOSITION


def _imports(path: Path) -> set[tuple[str, int]]:
    """(dotted module, line) of every absolute import; `from a import b` gives `a.b`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {(alias.name, node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {(f"{node.module}.{alias.name}", node.lineno) for alias in node.names}
    return found


def _room(parts: list[str]) -> str:
    """The room of scheduler.<parts>: a room's name, 'words', or a composition module."""
    head = parts[0] if parts else ""
    return "words" if head in WORDS else head


def _may(room: str, other: str) -> bool:
    if room in COMPOSITION or other == room or other == "words":
        return True
    if room == "words" or other in COMPOSITION:
        return False
    return room in ROOMS and other in ROOMS and ROOMS.index(other) < ROOMS.index(room)


def _scheduler_sources():
    for path in sorted((ROOT / "scheduler").rglob("*.py")):
        parts = list(path.relative_to(ROOT / "scheduler").with_suffix("").parts)
        if "migrations" in parts or parts == ["__init__"]:
            continue
        yield path, _room(parts)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name, line in _imports(path):
            top = name.split(".")[0]
            top = "flask" if top in ("flask", "flask_wtf", "werkzeug") else top
            if top in OURS and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert wrong == []


def test_each_room_imports_only_the_rooms_before_it():
    wrong = []
    for path, room in _scheduler_sources():
        for name, line in _imports(path):
            parts = name.split(".")
            if parts[0] == "gmail_client" and room not in GMAIL:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({room}) imports {name}")
            if parts[0] != "scheduler" or len(parts) < 2:
                continue
            other = _room(parts[1:])
            if not _may(room, other):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({room}) imports {name}")
    assert wrong == []


def test_every_room_says_what_it_holds_and_what_it_may_import():
    for room in ROOMS:
        doc = ast.get_docstring(ast.parse((ROOT / "scheduler" / room / "__init__.py")
                                          .read_text(encoding="utf-8"))) or ""
        assert "May import" in doc, room
    listed = {p.name for p in (ROOT / "scheduler").iterdir()
              if p.is_dir() and (p / "__init__.py").exists()}
    assert listed == set(ROOMS)
    top = {p.stem for p in (ROOT / "scheduler").glob("*.py")} - {"__init__"}
    assert top == WORDS | COMPOSITION


def test_the_architecture_page_shows_the_state_machine_as_the_code_has_it():
    from scheduler.store.transitions import TRANSITIONS
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in TRANSITIONS:
            rows[cells[0]] = (set(cells[1].split(", ")), cells[2], cells[3])
    assert rows == {name: ({str(s) for s in t.sources}, str(t.target), t.by)
                    for name, t in TRANSITIONS.items()}
