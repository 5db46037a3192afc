"""Static checks: no SQL built from strings, no eval, no unused names; user text never marked safe."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .helpers import ROOT

# Templates may mark as safe only what Pulse itself builds: the offline report inlines our own
# stylesheet and charts.js (files from survey_app/static, never user text).
SAFE_ALLOWLIST = {"report.html"}


def test_ruff_is_clean_with_the_house_config():
    """pyproject.toml's ruff config: pyflakes, PEP 8 blank lines and whitespace, sorted imports, and
    the security rules (no SQL built from strings, no eval or exec); over the code, tests and benchmarks."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run(
        [ruff, "check", "survey_app", "tests", "benchmarks", "tools", "--output-format", "concise"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
    config = (ROOT / "pyproject.toml").read_text()
    for rule in ("S608", "S307", "S102", '"F"', '"I"', "E303"):
        assert rule in config


def test_no_template_marks_user_text_safe():
    for path in (ROOT / "survey_app" / "templates").rglob("*.html"):
        text = path.read_text()
        hits = re.findall(r"\|\s*safe\b|Markup\(", text)
        assert not hits or path.name in SAFE_ALLOWLIST, f"{path.relative_to(ROOT)} uses {hits}"
    for path in (ROOT / "survey_app").rglob("*.py"):
        assert "Markup(" not in path.read_text(), path


def test_no_sql_text_built_with_fstrings():
    for path in (ROOT / "survey_app").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"text\(\s*f[\"']", text), path
        assert not re.search(r"exec_driver_sql\(\s*f[\"'](?!BEGIN)", text), path
