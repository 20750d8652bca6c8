"""Starter templates: the repository's `templates/` folder, one folder per starter.

Each folder holds `meta.json` (name, description, subject, transactional, sample data,
optional sources) and its parts: `body.html`, `body.txt` and, where it helps, `body.amp.html`.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from scheduler.errors import NotFound

_HERE = Path(__file__).resolve().parents[1]  # the scheduler package
# Installed: shipped inside the package; from a clone: the repository's folder.
_FOLDERS = (_HERE / "starter_templates", _HERE.parent / "templates")


def _folder() -> Path:
    for folder in _FOLDERS:
        if folder.is_dir():
            return folder
    return _FOLDERS[-1]


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


@lru_cache(maxsize=1)
def starters() -> dict[str, dict]:
    """key → {key, name, description, subject, html, text, amp, transactional, sample_data}."""
    found = {}
    for meta_path in sorted(_folder().glob("*/meta.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        folder = meta_path.parent
        found[folder.name] = {
            "key": folder.name, "name": meta["name"], "description": meta["description"],
            "subject": meta["subject"], "html": _read(folder / "body.html"),
            "text": _read(folder / "body.txt"), "amp": _read(folder / "body.amp.html"),
            "transactional": bool(meta.get("transactional", False)),
            "kind": meta.get("kind", "email"),
            "sources": meta.get("sources", []), "sample_data": meta.get("sample_data", {}),
        }
    return found


def template_body(found: dict) -> dict:
    """A starter as the body that creates a template of it."""
    return {k: found[k] for k in ("name", "subject", "html", "text", "amp", "sources",
                                  "transactional", "kind")}


def starter(key: str) -> dict:
    """One starter, or NotFound naming the known keys."""
    found = starters().get(key) if isinstance(key, str) else None
    if found is None:
        raise NotFound(f"no starter template {key!r}; there are: "
                       f"{', '.join(starters())}", field="starter")
    return found


@lru_cache(maxsize=1)
def rule_seeds() -> dict[str, dict]:
    """Ready-made rule sets (`rules.json` beside the starters): key → {description, rules}."""
    path = _folder() / "rules.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
