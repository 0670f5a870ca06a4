"""The real DAG on tiny params: `dvc repro`, a no-op second repro, gates, and the Prefect twin."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from tests.conftest import bin_path, git_commit, make_project, project_env, tiny_params
from tests.projects import write_dag

pytestmark = pytest.mark.slow
MODEL = "dlops-tabular-mlp"


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [bin_path("dvc"), *args], cwd=root, env=project_env(root), capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def client(root: Path):  # noqa: ANN201
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root}/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(root: Path) -> list[str]:
    return sorted(str(v.version) for v in client(root).search_model_versions(f"name = '{MODEL}'"))


def champion_version(root: Path) -> str:
    return str(client(root).get_model_version_by_alias(MODEL, "champion").version)


@pytest.fixture(scope="module")
def repro_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("repro") / "project", tiny_params())
    dvc(root, "repro")
    return root


def test_repro_ends_with_a_champion_that_predicts_raw_rows(repro_project: Path) -> None:
    import mlflow

    root = repro_project
    assert champion_version(root) == "1"
    version = client(root).get_model_version(MODEL, "1")
    assert version.tags["decision"] == "promoted"
    assert version.tags["git.dirty"] in {"true", "false"} and "data.version" in version.tags
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    raw = pd.read_parquet(root / "data/raw/tabular.parquet").drop(columns=["income"]).head(7)
    out = model.predict(raw)
    assert len(out) == 7 and set(out["prediction"]) <= {"<=50K", ">50K"}


def test_second_repro_does_nothing(repro_project: Path) -> None:
    lock = (repro_project / "dvc.lock").read_text()
    proc = dvc(repro_project, "repro")
    assert "up to date" in proc.stdout
    assert (repro_project / "dvc.lock").read_text() == lock
    assert versions(repro_project) == ["1"]


def test_a_fresh_clone_with_the_committed_lock_registers_into_its_own_store(
    repro_project: Path, tmp_path: Path
) -> None:
    git_commit(repro_project, "pipeline run")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repro_project), str(clone)], check=True)
    assert not (clone / "mlflow.db").exists() and (clone / "dvc.lock").exists()
    dvc(clone, "repro")
    assert champion_version(clone) == "1"
    receipt = json.loads((clone / "reports/register/tabular-mlp.json").read_text())
    assert receipt["gates_passed"] and receipt["model_name"] == MODEL


def test_metrics_and_plots_are_readable_by_dvc(repro_project: Path) -> None:
    shown = json.loads(dvc(repro_project, "metrics", "show", "--json").stdout)
    (workspace,) = shown.values()  # keyed by revision: "" for the workspace
    files = workspace["data"]
    assert set(files) == {"reports/evaluate/tabular-mlp/headline.json"}  # one narrow table: the headlines
    headline = files["reports/evaluate/tabular-mlp/headline.json"]["data"]
    metrics = json.loads((repro_project / "reports/evaluate/tabular-mlp/metrics.json").read_text())
    assert len(headline) == 10 and headline["metric"] == "balanced_accuracy"
    assert headline["value"] == metrics["test/balanced_accuracy"] and headline["gates"] == "passed"
    assert metrics["test/accuracy"] > 0.7
    assert "fairness/sex/demographic_parity_difference" in metrics
    _every_declared_plot_renders(repro_project)


def _every_declared_plot_renders(root: Path) -> None:
    """`dvc plots show` and `dvc plots diff` draw every plot reports/dvc.yaml declares, with no error and
    no warning: learning curves with train and val, calibration and confusion, the task's ROC overlay, the
    figures as images."""
    if subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout:
        git_commit(root, "pipeline run")  # diff against a HEAD that holds the run's outputs
    for args in (("plots", "show", "--json"), ("plots", "diff", "HEAD", "--json")):
        proc = dvc(root, *args)
        assert "failed" not in proc.stderr.lower() and "warning" not in proc.stderr.lower(), proc.stderr
        shown = json.loads(proc.stdout)
        assert not shown.get("errors"), shown["errors"]
        data = shown["data"]
        assert {"learning_curves.png", "roc.png", "calibration.png", "confusion_matrix.png"} <= {
            Path(name).name for name, items in data.items() if items and items[0]["type"] == "image"
        }
        curve = data["reports/train/tabular-mlp/history.json"][0]
        fields = {row["field"] for row in curve["content"]["data"]["values"]}
        assert {"train/loss", "val/loss"} <= fields, fields
        assert "tabular: ROC of every classifier (test)" in data
        calibration = data["reports/evaluate/tabular-mlp/calibration.json"][0]["content"]["data"]["values"]
        assert calibration and {"confidence", "accuracy"} <= set(calibration[0])


def test_prefect_flow_matches_dvc_repro(repro_project: Path, tmp_path: Path) -> None:
    from pipelines.retrain import retrain
    from prefect.testing.utilities import prefect_test_harness

    root = make_project(tmp_path / "flow", tiny_params())
    with prefect_test_harness():
        summary = retrain(root=str(root))
        assert summary["batches"] == {}
        assert summary["decisions"]["tabular-mlp"].startswith("version 1 promoted")
        assert "tabular-mlp" in summary["leaderboard"]
        for rel in (
            "reports/evaluate/tabular-mlp/metrics.json",
            "reports/validate/tabular/summary.json",
            "reports/train/tabular-mlp/history.json",
        ):
            assert (root / rel).read_bytes() == (repro_project / rel).read_bytes(), rel
        assert lock_without_data_docs(root) == lock_without_data_docs(repro_project)
        assert champion_version(root) == "1"
        _a_failed_stage_puts_back_what_dvc_deleted(root)


def _a_failed_stage_puts_back_what_dvc_deleted(root: Path) -> None:
    """A stage that fails for good fails the flow, and the outputs DVC deleted before running it are
    back as dvc.lock records them."""
    from pipelines.retrain import StageFailed, retrain

    from dlops.restore import locked_outputs

    (root / "empty.csv").write_bytes(b"")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["tasks"]["tabular"]["ingest"] = {"source": "table", "path": "empty.csv"}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(StageFailed, match="empty.csv"):
        retrain(root=str(root))
    raw = next(out for out in locked_outputs(root) if out.path == "data/raw/tabular.parquet")
    assert hashlib.md5((root / raw.path).read_bytes()).hexdigest() == raw.md5
    assert champion_version(root) == "1" and not list((root / ".dlops").glob("kept-*"))


def lock_without_data_docs(root: Path) -> dict[str, Any]:
    """dvc.lock minus GE's data docs, which stamp the wall-clock time into their HTML."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        stage["outs"] = [out for out in stage.get("outs", []) if "data_docs" not in out["path"]]
    return dict(lock)


def test_bad_values_stop_at_validate_and_strong_bias_fails_the_gate(
    repro_project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "gates"
    shutil.copytree(repro_project, root, symlinks=True)  # the same first run, its champion
    assert champion_version(root) == "1"

    # impossible values in a real table: validate stops the DAG naming the column; no new version
    raw = pd.read_parquet(root / "data/raw/tabular.parquet")
    raw.loc[raw.index[:300], "age"] = -40
    raw.to_csv(root / "incoming.csv", index=False)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["tasks"]["tabular"]["ingest"] = {"source": "table", "path": "incoming.csv"}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_dag(root)  # what `dlops run` does before `dvc repro`: the task now reads a file
    proc = dvc(root, "repro", check=False)
    assert proc.returncode != 0
    assert (
        "age" in proc.stderr + proc.stdout
        and "expect_column_values_to_be_between" in proc.stderr + proc.stdout
    )
    assert versions(root) == ["1"]

    # a strongly biased world: the candidate is registered, rejected by the fairness gate, champion stays
    params["tasks"]["tabular"]["ingest"] = tiny_params()["tasks"]["tabular"]["ingest"] | {"bias": 2.5}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_dag(root)  # what `dlops run` does before `dvc repro`: the task now reads a file
    proc = dvc(root, "repro", check=False)
    assert proc.returncode != 0, proc.stdout
    assert "demographic_parity_difference" in proc.stderr + proc.stdout
    assert champion_version(root) == "1"
    rejected = client(root).get_model_version(MODEL, "2")
    assert rejected.tags["decision"] == "rejected"


def test_dvc_push_then_pull_restores_every_output(repro_project: Path) -> None:
    """The default remote (`local`, a folder) round-trips data, models and reports."""
    root = repro_project
    dvc(root, "push")
    tracked = ["data/raw/tabular.parquet", "models/tabular-mlp/model.pt"]
    before = {rel: (root / rel).read_bytes() for rel in tracked}
    for rel in tracked:
        (root / rel).unlink()
    shutil.rmtree(root / ".dvc" / "cache")  # without the local cache, pull must read the remote
    dvc(root, "pull")
    assert {rel: (root / rel).read_bytes() for rel in tracked} == before
    assert "up to date" in dvc(root, "repro").stdout


def test_dvc_exp_run_sets_a_training_knob(repro_project: Path) -> None:
    """`dvc exp run -S` on a training knob retrains that pair only; the experiment shows the new value."""
    root = repro_project
    proc = dvc(root, "exp", "run", "-S", "models.tabular-mlp.train.lr=0.001")
    assert "Running stage 'ingest@tabular'" not in proc.stdout
    assert "Running stage 'train@tabular-mlp'" in proc.stdout
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["models"]["tabular-mlp"]["train"]["lr"] == 0.001
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    assert "0.001" in json.dumps(shown)
