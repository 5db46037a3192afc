"""The README documents every setting and every command, and keeps exactly two Quickstart commands.

The settings table and the aggregate CSV's columns must be exactly what the code says: on a
mismatch, paste the output of `python -m tools.readme_tables` into README.md.
"""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from survey_app.cli import main
from survey_app.settings import SETTINGS, markdown_table
from tools.readme_tables import csv_columns

from .helpers import ROOT

README = (ROOT / "README.md").read_text()
HOW_TO_FIX = "README.md differs from the code: paste what `python -m tools.readme_tables` prints"


def readme_settings_table() -> str:
    """The README's settings table, from its header row to its last row."""
    lines = README.splitlines()
    start = lines.index("| variable | default | meaning |")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end]) + "\n"


def test_the_settings_table_is_exactly_the_code():
    assert readme_settings_table() == markdown_table(), HOW_TO_FIX


def test_every_default_can_be_said():
    for setting in SETTINGS:
        assert setting.shown_default(), setting.env


def test_the_csv_columns_are_exactly_the_code():
    export_row = next(line for line in README.splitlines() if line.startswith("| `pulse export"))
    assert csv_columns() in export_row, HOW_TO_FIX


def test_the_tool_prints_what_the_tests_compare():
    out = subprocess.run(
        [sys.executable, "-m", "tools.readme_tables"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert markdown_table() in out and csv_columns() in out


def _commands(group: click.Group, prefix: str = "pulse"):
    for name, command in group.commands.items():
        yield f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


@pytest.mark.parametrize("command", sorted(_commands(main)))
def test_every_command_is_documented(command):
    assert f"`{command}" in README, command


def test_quickstart_has_exactly_two_commands():
    out = [
        subprocess.run(
            [sys.executable, str(ROOT / ".ci" / "readme_command.py"), which], capture_output=True, text=True, check=True
        ).stdout.strip()
        for which in ("serve", "test")
    ]
    assert "pulse serve" in out[0]
    assert "pytest" in out[1]


@pytest.mark.parametrize("command", sorted(_commands(main)))
def test_every_command_has_help(command):
    from click.testing import CliRunner

    result = CliRunner().invoke(main, command.split()[1:] + ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
