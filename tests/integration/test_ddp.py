"""Data-parallel training: 2 CPU processes under torchrun (gloo) against one process.

Tolerance: with the same global batch, no dropout and no BatchNorm, two ranks differ from one process
only in the order gradients are summed, so parameters agree to 1e-5 and losses to 1e-6 relative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import bin_path, make_project, mlflow_uris_restored, project_env, tiny_params
from tests.integration import ddp_worker

pytestmark = pytest.mark.slow
PAIR = "tabular-mlp"


def torchrun(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("ddp") / "report.json"
    torchrun([str(Path(ddp_worker.__file__)), str(out)], cwd=Path(__file__).parents[2])
    return json.loads(out.read_text())


def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(two_ranks: dict[str, Any]) -> None:
    single = ddp_worker.train_equivalence_model()
    parallel = two_ranks["equivalence"]
    assert two_ranks["world_size"] == 2
    assert parallel["state"].keys() == single["state"].keys()
    for name, values in single["state"].items():
        np.testing.assert_allclose(parallel["state"][name], values, rtol=0, atol=1e-5, err_msg=name)
    assert len(parallel["history"]) == len(single["history"]) == 4
    for ours, theirs in zip(parallel["history"], single["history"], strict=True):
        for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-6), key
    assert single["history"][-1]["val/loss"] < single["history"][0]["val/loss"]  # it did learn


def test_each_rank_trains_on_its_own_half_of_every_global_batch(two_ranks: dict[str, Any]) -> None:
    rank0, rank1 = (rows[:256] for rows in two_ranks["rows_drawn_by_rank"])  # the first epoch
    single = ddp_worker.train_equivalence_model()["rows_drawn"][:512]
    assert len(rank0) == len(rank1) == 256  # 8 global batches of 64, 32 rows per rank
    assert not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == sorted(single) == list(range(512))
    for batch in range(8):  # the same global batches as one process, split between the ranks
        one = single[64 * batch : 64 * (batch + 1)]
        assert sorted(rank0[32 * batch : 32 * (batch + 1)] + rank1[32 * batch : 32 * (batch + 1)]) == sorted(
            one
        )


def test_every_family_keeps_identical_replicas_across_ranks(two_ranks: dict[str, Any]) -> None:
    rank0, rank1 = two_ranks["checksums_by_rank"]
    assert set(rank0) == set(ddp_worker.FAMILIES)
    assert rank0 == rank1


def test_torchrun_train_stage_logs_and_writes_only_on_rank_0(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from dlops import stages, tracking

    root = make_project(tmp_path / "project", tiny_params())
    with mlflow_uris_restored(), pytest.MonkeyPatch.context() as mp:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DLOPS_PIPELINE_RUN_ID"):
            mp.delenv(name, raising=False)
        for stage in (stages.ingest, stages.validate, stages.preprocess):
            stage("tabular", root)
        # as `DLOPS_NPROC_PER_NODE=2 dvc repro` runs it: the command relaunches itself under torchrun
        env = {**project_env(root), "DLOPS_NPROC_PER_NODE": "2"}
        done = subprocess.run(
            [bin_path("dlops"), "train", PAIR], cwd=root, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-5000:]
        client = MlflowClient(tracking.tracking_uri(root))
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()], f"tags.`dlops.pair` = '{PAIR}'"
        )
    assert len(runs) == 1, "only rank 0 talks to MLflow"
    run = runs[0]
    assert run.data.tags["train.world_size"] == "2"
    history = json.loads((root / f"reports/train/{PAIR}/history.json").read_text())
    logged = client.get_metric_history(run.info.run_id, "val/loss")
    assert len(logged) == len(history["epochs"]) >= 1  # one value per epoch, not one per rank
    assert sorted(p.name for p in (root / "models" / PAIR).iterdir()) == ["model.pt"]
    assert history["epochs"][-1]["val/accuracy"] > 0.75, done.stderr[-2000:]
    assert done.stdout.count('"model_sha256"') == 1  # rank 0 reports; rank 1 prints nothing


def test_a_bad_process_count_is_named(tmp_path: Path) -> None:
    env = {**os.environ, "DLOPS_NPROC_PER_NODE": "two"}
    done = subprocess.run([bin_path("dlops"), "train", PAIR], env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "DLOPS_NPROC_PER_NODE must be a positive integer, got 'two'" in done.stderr
