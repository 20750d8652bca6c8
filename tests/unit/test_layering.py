"""The rule of imports: app → scheduler → gmail_client, never back; and only app imports
Flask. Read from the source with `ast`, so a lazy import inside a function counts too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What each package may import of ours (and of Flask).
ALLOWED = {"app": {"app", "scheduler", "gmail_client", "flask"},
           "scheduler": {"scheduler", "gmail_client"},
           "gmail_client": {"gmail_client"}}
OURS = {"app", "scheduler", "gmail_client", "flask", "flask_wtf", "werkzeug"}


def _imports(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.module.split(".")[0], node.lineno))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name, line in _imports(path):
            top = "flask" if name in ("flask", "flask_wtf", "werkzeug") else name
            if top in OURS and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert wrong == []


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
