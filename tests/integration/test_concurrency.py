"""Pipeline runs started together in one workspace. `dlops run` (what `make run` calls) holds the
workspace lock around `dvc repro`: a second `dlops run` stops at once naming the holder, and a bare
`dvc repro` started meanwhile stops at its first stage (DVC's output lock, or the stage's own check of
the workspace lock). dvc.lock, the data and the registry end exactly as after one run from scratch."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import bin_path, make_project, project_env, tiny_params
from tests.integration.test_pipeline import client, dvc, lock_without_data_docs

pytestmark = pytest.mark.slow
MODEL = "dlops-tabular-mlp"


def start(root: Path, *command: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [bin_path(command[0]), *command[1:]],
        cwd=root,
        env=project_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_runs_started_together_one_completes_the_others_stop_and_change_nothing(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", tiny_params())
    first, second = start(root, "dlops", "run"), start(root, "dlops", "run")
    deadline = time.monotonic() + 300
    while not (root / "data" / "raw" / "tabular.parquet").exists():  # the holder is past ingest
        assert time.monotonic() < deadline and (first.poll() is None or second.poll() is None)
        time.sleep(0.2)
    bare = start(root, "dvc", "repro")
    outputs = {
        name: run.communicate(timeout=600)[0] for name, run in [("a", first), ("b", second), ("dvc", bare)]
    }
    codes = {"a": first.returncode, "b": second.returncode}

    assert sorted(codes.values()) == [0, 1], outputs
    refused = outputs[next(name for name, code in codes.items() if code)]
    assert "dlops run: error:" in refused and "another pipeline run holds .dlops/retrain.lock" in refused
    assert "dlops run" in refused.split("holds", 1)[1]  # who holds it
    print(outputs["dvc"])
    assert bare.returncode != 0, outputs["dvc"]
    assert "another pipeline run holds" in outputs["dvc"] or "is busy" in outputs["dvc"], outputs["dvc"]

    assert "up to date" in dvc(root, "status").stdout  # dvc.lock matches every output
    assert [str(v.version) for v in client(root).search_model_versions(f"name = '{MODEL}'")] == ["1"]
    assert str(client(root).get_model_version_by_alias(MODEL, "champion").version) == "1"
    reference = make_project(tmp_path / "reference", tiny_params())
    dvc(reference, "repro")  # one run alone, from scratch: the same outputs, byte for byte
    assert lock_without_data_docs(root) == lock_without_data_docs(reference)
