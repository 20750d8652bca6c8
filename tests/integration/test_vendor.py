"""The browser libraries we serve are the registry's files, byte for byte."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parents[2] / "app" / "static" / "vendor"


def test_chart_js_is_the_npm_packages_file(tmp_path):
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to check the vendored Chart.js (.ci/run installs it)")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(VENDOR / name, tmp_path / name)
    # npm ci checks every tarball against the lock file's sha512 integrity.
    subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=tmp_path,
                   check=True, capture_output=True, timeout=300)
    package = tmp_path / "node_modules" / "chart.js"
    pinned = json.loads((VENDOR / "package.json").read_text())["dependencies"]["chart.js"]
    assert json.loads((package / "package.json").read_text())["version"] == pinned
    assert (package / "dist" / "chart.umd.min.js").read_bytes() == \
        (VENDOR / "chart.umd.min.js").read_bytes()
    assert (package / "LICENSE.md").read_bytes() == (VENDOR / "chart.js.LICENSE.md").read_bytes()
