"""The README documents every setting and every command, and keeps exactly two Quickstart commands."""
from __future__ import annotations

import subprocess
import sys

import click
import pytest

from survey_app.cli import main
from survey_app.settings import SETTINGS

from .helpers import ROOT

README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env)
def test_every_setting_is_documented(setting):
    assert f"`{setting.env}`" in README


def _commands(group: click.Group, prefix: str = "pulse"):
    for name, command in group.commands.items():
        yield f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


@pytest.mark.parametrize("command", sorted(_commands(main)))
def test_every_command_is_documented(command):
    assert f"`{command}" in README, command


def test_quickstart_has_exactly_two_commands():
    out = [subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_command.py"), which],
                          capture_output=True, text=True, check=True).stdout.strip() for which in ("serve", "test")]
    assert "pulse serve" in out[0]
    assert "pytest" in out[1]


@pytest.mark.parametrize("command", sorted(_commands(main)))
def test_every_command_has_help(command):
    from click.testing import CliRunner

    result = CliRunner().invoke(main, command.split()[1:] + ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
