"""`dlops run` runs every stage whose inputs are valid even when a candidate is rejected: the rejection
is named, the other model is still trained and registered, and the exit code says "rejected" (3).
When a run fails (bad data, an unreachable tracking server, a signal), every DVC output is put back to
what dvc.lock records, the registry is unchanged, and the next run starts cleanly."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import yaml
from tests.conftest import bin_path, make_project, project_env, tiny_params
from tests.integration.corpus_inputs import UNREACHABLE
from tests.integration.test_pipeline import client

pytestmark = pytest.mark.slow


def _dlops_run(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bin_path("dlops"), "run"],
        cwd=root,
        env={**project_env(root), **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """A project whose first `dlops run` had one candidate rejected (tabular-strict), one promoted and a
    control (tabular-control, built to fail min_primary) rejected as it must be."""
    params = tiny_params()
    strict = copy.deepcopy(params["models"]["tabular-mlp"])
    strict["gates"] = {**strict["gates"], "min_primary": 0.999}  # no model reaches it
    control = copy.deepcopy(strict)
    control["gates"]["control"] = "min_primary"
    control["train"].update(max_rows=200, early_stopping=False, epochs=3)
    params["models"] = {
        "tabular-strict": strict,
        "tabular-mlp": params["models"]["tabular-mlp"],
        "tabular-control": control,
    }
    root = make_project(tmp_path_factory.mktemp("ran") / "project", params)
    yield root, _dlops_run(root)


def test_a_rejected_candidate_does_not_stop_the_others(ran: tuple[Path, Any]) -> None:
    root, proc = ran
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "rejected by their gates: tabular-strict" in proc.stderr
    assert "register@tabular-strict" in proc.stderr and "(gates.min_primary)" in proc.stderr
    assert "tabular-mlp" in proc.stdout  # the leaderboard was printed
    version = client(root).get_model_version_by_alias("dlops-tabular-mlp", "champion")
    assert version.tags["decision"] == "promoted"
    assert (root / "reports/register/tabular-mlp.json").is_file()


def test_a_control_rejected_by_its_gate_is_a_success_and_is_never_promoted(ran: tuple[Path, Any]) -> None:
    root, proc = ran
    # not among the rejected: its gate caught it, so its register stage succeeded
    assert "rejected by their gates: tabular-strict (exit 3)" in proc.stderr
    version = client(root).get_model_version("dlops-tabular-control", "1")
    assert version.tags["control"] == "min_primary" and version.tags["control.caught"] == "true"
    assert version.tags["decision"] == "rejected" and not version.aliases
    board = subprocess.run(
        [bin_path("dlops"), "leaderboard", "--json"], cwd=root, env=project_env(root), capture_output=True
    )
    rows = {row["model"]: row for row in json.loads(board.stdout)}
    assert rows["tabular-control"]["decision"] == "rejected (control: min_primary)"
    receipt = json.loads((root / "reports/register/tabular-control.json").read_text())
    assert receipt["control"] == "min_primary"
    history = json.loads((root / "reports/train/tabular-control/history.json").read_text())
    assert len(history["epochs"]) == 3  # no early stopping
    refused = subprocess.run(
        [bin_path("dlops"), "promote", "tabular-control", "1", "--override", "--reason", "try"],
        cwd=root,
        env=project_env(root),
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 65 and "models.tabular-control.gates.control" in refused.stderr


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _state(root: Path) -> dict[str, Any]:
    """dvc.lock, the md5 of every file output it records (directories: present or not), the registry."""
    from dlops.restore import locked_outputs

    outputs = {
        out.path: (root / out.path).is_dir() if out.md5.endswith(".dir") else (
            _md5(root / out.path) if (root / out.path).is_file() else None
        )
        for out in locked_outputs(root)
    }  # fmt: skip
    registry = {
        (v.name, v.version, tuple(sorted(v.aliases)))
        for m in client(root).search_registered_models()
        for v in client(root).search_model_versions(f"name='{m.name}'")
    }
    return {"lock": (root / "dvc.lock").read_text(), "outputs": outputs, "registry": registry}


def _matches_lock(root: Path) -> list[str]:
    """The file outputs of dvc.lock the workspace does not hold as recorded."""
    from dlops.restore import locked_outputs

    return [
        out.path
        for out in locked_outputs(root)
        if not out.md5.endswith(".dir")
        and not ((root / out.path).is_file() and _md5(root / out.path) == out.md5)
    ]


def _edit_params(root: Path, edit: Any) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    edit(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_failed_run_puts_every_output_back_and_the_registry_is_unchanged(
    ran: tuple[Path, Any], tmp_path: Path
) -> None:
    root = tmp_path / "project"
    shutil.copytree(ran[0], root, symlinks=True)
    before = _state(root)
    assert before["outputs"]["data/raw/tabular.parquet"] and not _matches_lock(root)

    # bad data at ingest: DVC deletes data/raw/tabular.parquet before it runs the stage
    original = (root / "params.yaml").read_text()
    table = pd.read_parquet(root / "data/raw/tabular.parquet").drop(columns=["__split"], errors="ignore")
    (root / "data/input").mkdir(parents=True)
    table.iloc[:0].to_parquet(root / "data/input/empty.parquet")
    _edit_params(root, lambda p: p["tasks"]["tabular"].update(
        ingest={"source": "table", "path": "data/input/empty.parquet"}))  # fmt: skip
    proc = _dlops_run(root)
    assert proc.returncode == 65, proc.stderr  # bad input
    assert "data/input/empty.parquet" in proc.stderr
    assert "no leaderboard after a failed stage; `dlops leaderboard` prints it" in proc.stderr
    assert "dlops leaderboard (test split)" not in proc.stdout  # the failure is the run's last word
    assert _state(root) == before, "the failed ingest left the workspace or the registry changed"

    # an unreachable tracking server after a train-param change: DVC deletes model.pt and history.json
    (root / "params.yaml").write_text(original)
    _edit_params(root, lambda p: p["models"]["tabular-mlp"]["train"].update(epochs=2))
    proc = _dlops_run(root, UNREACHABLE)
    assert proc.returncode == 75, proc.stderr  # transient
    assert "127.0.0.1:9" in proc.stderr
    after = _state(root)  # stages that passed with the new params (search@) updated dvc.lock: fine
    for output in ("models/tabular-mlp/model.pt", "reports/train/tabular-mlp/history.json"):
        assert after["outputs"][output] == before["outputs"][output], output
    assert after["registry"] == before["registry"] and not _matches_lock(root)


def test_sigterm_stops_the_whole_run_and_the_next_run_starts_cleanly(
    ran: tuple[Path, Any], tmp_path: Path
) -> None:
    root = tmp_path / "project"
    shutil.copytree(ran[0], root, symlinks=True)
    _edit_params(root, lambda p: p["models"]["tabular-mlp"]["train"].update(epochs=30))  # a longer train
    run = subprocess.Popen(
        [bin_path("dlops"), "run"], cwd=root, env=project_env(root), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline, children = time.monotonic() + 300, []
    while time.monotonic() < deadline and run.poll() is None:
        children = psutil.Process(run.pid).children(recursive=True)
        if any("train" in " ".join(c.cmdline()) for c in children if c.is_running()):
            break
        time.sleep(0.2)
    assert children, "dlops run started no stage"
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr
    alive = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes of the run outlived it: {alive}"
    assert not _matches_lock(root)

    proc = _dlops_run(root)  # the next run: no stale lock, no manual deletion
    assert proc.returncode == 3, proc.stderr  # tabular-strict is still rejected; everything else ran
    assert "lock" not in proc.stderr.lower()
    assert not _matches_lock(root)
