"""The `dlops` command's own surface: its version, the exit codes its help lists, drift's --exit-code."""

from __future__ import annotations

from importlib.metadata import version

import pytest
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


@pytest.mark.parametrize(("drifted", "flag", "code"), [(True, True, 4), (False, True, 0), (True, False, 0)])
def test_drift_exit_code_says_drift_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, drifted: bool, flag: bool, code: int
) -> None:
    from dlops import intake

    monkeypatch.setattr(intake, "check_drift", lambda *args, **kwargs: {"drifted": drifted, "markdown": ""})
    args = ["drift", "text", "--spec", '{"rows": 10}', "--no-log", *(["--exit-code"] if flag else [])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code == (errors.EXIT_DRIFTED if drifted and flag else 0)
    assert f'"drifted": {str(drifted).lower()}' in result.stdout
