"""The `dlops` command's own surface: its version and the exit codes its help lists."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from dlops import errors
from dlops.cli import app


def test_version_prints_the_installed_version_and_exits_0() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"dlops {version('dlops')}"


def test_help_lists_every_exit_code() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for code in (errors.EXIT_FAILED, errors.EXIT_REJECTED, errors.EXIT_BAD_INPUT, errors.EXIT_TRANSIENT):
        assert f" {code} " in text, code
    assert "Exit codes: 0 done" in text
