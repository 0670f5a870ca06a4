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


def test_one_root_option_for_every_command_and_its_env_var(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """`dlops --root DIR <command>` and DLOPS_ROOT: every command works on that project; the per-command
    --root of older scripts still works but is not listed."""
    import os

    import yaml
    from tests.conftest import tiny_params

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    monkeypatch.delenv("DLOPS_ROOT", raising=False)
    runner = CliRunner()
    for args, env in (
        (["--root", str(tmp_path), "check-params"], {}),
        (["check-params"], {"DLOPS_ROOT": str(tmp_path)}),
        (["check-params", "--root", str(tmp_path)], {}),
    ):
        result = runner.invoke(app, args, env=env)
        os.environ.pop("DLOPS_ROOT", None)  # the global option sets it for the rest of its process
        assert result.exit_code == 65 and "dag.yaml is missing" in result.output, (args, result.output)
    help_text = runner.invoke(app, ["check-params", "--help"]).stdout
    assert "--root" not in help_text
    assert "DLOPS_ROOT" in runner.invoke(app, ["--help"], terminal_width=200).stdout


def test_task_and_model_names_complete_from_the_projects_params(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import yaml
    from tests.conftest import tiny_params

    from dlops.cli import _names

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(images=True)))
    monkeypatch.setenv("DLOPS_ROOT", str(tmp_path))
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert _names("models")("tabular-") == [m for m in raw["models"] if m.startswith("tabular-")]
    assert "tabular-mlp" in _names("models")("tab") and "images-cnn" not in _names("models")("tab")
    assert _names("tasks")("") == list(raw["tasks"])
    monkeypatch.setenv("DLOPS_ROOT", str(tmp_path / "nowhere"))
    assert _names("models")("") == []  # no project: no names, no traceback in the shell


def test_every_command_summary_is_one_whole_sentence() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        summary = command.short_help or (command.help or "").split("\n\n")[0]
        summary = " ".join(summary.split())
        assert len(summary) <= 100 and summary.endswith("."), (name, summary)
