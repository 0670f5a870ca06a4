"""One DlopsError hierarchy: the CLI returns each error's exit code and records it for the flows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from dlops.batches import BatchRejected
from dlops.cli import _run
from dlops.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_QUARANTINED,
    EXIT_REJECTED,
    EXIT_TRANSIENT,
    read_outcome,
)
from dlops.gates import Decision, GateCheck, GateFailure
from dlops.params import ConfigError


def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    ("exc", "code", "start"),
    [
        (ConfigError("models.x.train.lr: must be > 0"), EXIT_BAD_INPUT, "error: models.x.train.lr"),
        (BatchRejected("2 rows", Path("q")), EXIT_QUARANTINED, "quarantined: 2 rows"),
        (ConnectionRefusedError("no server"), EXIT_TRANSIENT, "transient error (retry may succeed)"),
        (RuntimeError("boom"), EXIT_FAILED, "error: boom"),
    ],
)
def test_the_exit_code_and_the_outcome_file_come_from_the_error(
    exc: BaseException, code: int, start: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = tmp_path / "outcome.json"
    monkeypatch.setenv("DLOPS_OUTCOME_FILE", str(outcome))
    with pytest.raises(typer.Exit) as stopped:
        _run("stage", lambda: _raise(exc))
    assert stopped.value.exit_code == code
    recorded = read_outcome(outcome)
    assert recorded is not None and recorded["exit_code"] == code and recorded["command"] == "stage"
    assert recorded["message"].startswith(start), recorded["message"]
    assert json.loads(outcome.read_text())["exit_code"] == code


def test_a_gate_failure_is_a_rejection_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check = GateCheck(name="min_primary", value=0.5, limit=0.7, op=">=", passed=False)
    decision = Decision(
        promote=False,
        checks=[check],
        reasons=["accuracy 0.5 below 0.7"],
        champion_version=None,
        primary_metric="test/accuracy",
        candidate_primary=0.5,
        champion_primary=None,
    )
    monkeypatch.setenv("DLOPS_OUTCOME_FILE", str(tmp_path / "o.json"))
    with pytest.raises(typer.Exit) as stopped:
        _run("register", lambda: _raise(GateFailure(decision)))
    assert stopped.value.exit_code == EXIT_REJECTED
    assert read_outcome(tmp_path / "o.json")["message"].startswith(
        "rejected by the gates: quality gates failed"
    )  # type: ignore[index]


def test_no_outcome_file_without_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLOPS_OUTCOME_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(typer.Exit):
        _run("stage", lambda: _raise(ConfigError("bad")))
    assert list(tmp_path.iterdir()) == []


def test_a_lock_timeout_is_no_network_trouble(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """filelock's Timeout is a TimeoutError: a busy workspace stops with 1, not the retryable 75."""
    from filelock import Timeout

    from dlops.workspace import WorkspaceBusy

    def busy() -> None:
        try:
            raise Timeout(str(tmp_path / "retrain.lock"))
        except Timeout as exc:
            raise WorkspaceBusy("another pipeline run holds .dlops/retrain.lock") from exc

    monkeypatch.setenv("DLOPS_OUTCOME_FILE", str(tmp_path / "o.json"))
    with pytest.raises(typer.Exit) as stopped:
        _run("run", busy)
    assert stopped.value.exit_code == EXIT_FAILED


def test_a_locked_sqlite_store_is_transient_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    locked = OperationalError("INSERT INTO metrics ...", {}, sqlite3.OperationalError("database is locked"))
    with pytest.raises(typer.Exit) as stopped:
        _run("train", lambda: _raise(locked))
    assert stopped.value.exit_code == EXIT_TRANSIENT
    said = capsys.readouterr().err
    assert "sqlite:///mlflow.db is locked by another process" in said and "INSERT" not in said
