"""Stage `search` in the real DAG: an Optuna study on train/val whose best values `train` uses, every
trial an MLflow child run of one parent, the retrained model (never a trial) gated and registered, a
second `dvc repro` that does nothing, parallel workers sharing one study, and no look at the test split.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import make_project, mlflow_uris_restored, project_env, tiny_params
from tests.integration.test_pipeline import client, dvc, versions

pytestmark = pytest.mark.slow
PAIR = "tabular-mlp"
SEARCH: dict[str, Any] = {
    "trials": 5,
    "epochs": 3,
    "seed": 0,
    "pruner": {"startup_trials": 2, "warmup_epochs": 1},
    "space": {
        "train.lr": {"low": 0.0003, "high": 0.03, "log": True},
        "model.dropout": {"low": 0.0, "high": 0.5},
        "model.hidden_sizes": {"choices": [[32], [64, 32]]},
    },
}


def search_params(**search: Any) -> dict[str, Any]:
    params = tiny_params()
    params["models"][PAIR]["search"] = {**SEARCH, **search}
    return params


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("search") / "project", search_params())
    dvc(root, "repro")
    return root


def result(root: Path) -> dict[str, Any]:
    return json.loads((root / "reports" / "search" / f"{PAIR}.json").read_text())


def runs(root: Path, where: str = "") -> list[Any]:
    mlflow = client(root)
    experiment = mlflow.get_experiment_by_name("dlops")
    return list(mlflow.search_runs([experiment.experiment_id], filter_string=where, max_results=1000))


def trial_runs(root: Path) -> list[Any]:
    return [r for r in runs(root) if "dlops.search.trial" in r.data.tags]


def test_the_study_beats_the_default_values_on_validation(searched: Path) -> None:
    found = result(searched)
    assert found["trials"]["total"] == SEARCH["trials"]
    assert found["objective"] == "val/loss" and found["direction"] == "minimize"
    assert found["default"]["params"] == {"train.lr": 0.003, "model.dropout": 0.1, "model.hidden_sizes": [32]}
    assert found["best"]["trial"] != 0  # trial 0 ran params.yaml's values; another one did better
    assert found["best"]["value"] < found["default"]["value"]
    assert found["improvement"] == pytest.approx(found["default"]["value"] - found["best"]["value"])


def test_every_trial_is_a_child_run_and_the_parent_holds_the_summary(searched: Path) -> None:
    parents = runs(searched, "tags.`dlops.search.study` != ''")
    assert len(parents) == 1
    parent = parents[0]
    trials = trial_runs(searched)
    assert len(trials) == SEARCH["trials"]
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    states = sorted(t.data.tags["search.state"] for t in trials)
    assert set(states) <= {"COMPLETE", "PRUNED"} and "COMPLETE" in states
    found = result(searched)
    assert parent.data.metrics["search/best_value"] == pytest.approx(found["best"]["value"])
    assert parent.data.metrics["search/default_value"] == pytest.approx(found["default"]["value"])
    for key, value in found["best"]["params"].items():
        assert json.loads(parent.data.tags[f"best.{key}"]) == value
    artifacts = {a.path for a in client(searched).list_artifacts(parent.info.run_id, "search")}
    assert {
        "search/optimization_history.png",
        "search/param_importances.png",
        "search/trials.csv",
    } <= artifacts


def test_train_uses_the_best_values_and_the_retrained_model_is_what_is_gated(searched: Path) -> None:
    from dlops.training.checkpoint import load_safe

    best = result(searched)["best"]["params"]
    ckpt = load_safe(searched / "models" / PAIR / "model.pt")
    assert ckpt["train_config"]["lr"] == best["train.lr"]
    assert ckpt["train_config"]["epochs"] == 6  # train's own epochs, not the trials' 3
    assert ckpt["model_config"]["dropout"] == best["model.dropout"]
    assert ckpt["model_config"]["hidden_sizes"] == best["model.hidden_sizes"]
    assert versions(searched) == ["1"]
    version = client(searched).get_model_version(f"dlops-{PAIR}", "1")
    source = client(searched).get_run(version.run_id)
    assert "dlops.search.trial" not in source.data.tags  # the registered model is no trial
    assert source.data.tags["search.study"] == result(searched)["study"]
    assert version.tags["gate.min_primary.passed"] == "true"  # the gates judged the retrained model
    assert version.tags["decision"] == "promoted"
    assert result(searched)["study"] in version.description  # the model card's lineage names the study
    for trial in trial_runs(searched):  # no trial logged a model
        assert not client(searched).list_artifacts(trial.info.run_id)


def test_a_second_repro_does_nothing(searched: Path) -> None:
    lock = (searched / "dvc.lock").read_text()
    before = len(runs(searched))
    proc = dvc(searched, "repro")
    assert "didn't change" in proc.stdout or "is up to date" in proc.stdout.lower(), proc.stdout
    assert (searched / "dvc.lock").read_text() == lock
    assert len(runs(searched)) == before


def test_a_stale_result_stops_train_naming_the_file_and_the_command(searched: Path, tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(searched, root, symlinks=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["models"][PAIR]["search"]["seed"] = 1  # another study
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(
        ["dlops", "train", PAIR], cwd=root, env=project_env(root), capture_output=True, text=True
    )
    assert proc.returncode == 65  # bad input: the search result is for another study
    assert f"reports/search/{PAIR}.json is from study" in proc.stderr
    assert f"dlops search {PAIR}" in proc.stderr


def test_two_workers_share_one_study_and_the_search_never_reads_the_test_split(
    searched: Path, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    shutil.copytree(searched, root, symlinks=True)
    for test_file in (root / "data" / "processed" / "tabular").glob("test*"):
        test_file.unlink()  # a search that read the test split would fail here
    params = yaml.safe_load((root / "params.yaml").read_text())
    # trials long enough that the second worker (seconds to start) takes some before the budget is used
    never_prune = {"startup_trials": 14, "warmup_epochs": 10}  # pruned trials end in a blink
    params["models"][PAIR]["search"].update(seed=7, workers=2, trials=14, epochs=10, pruner=never_prune)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(
        ["dlops", "search", PAIR], cwd=root, env=project_env(root), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = result(root)
    assert found["study"] != result(searched)["study"]
    assert 14 <= found["trials"]["total"] <= 15  # a parallel worker may finish one trial past the budget
    study_trials = [t for t in trial_runs(root) if t.data.tags.get("mlflow.parentRunId") == _parent(root)]
    assert {t.data.tags["dlops.search.worker"] for t in study_trials} == {"0", "1"}


def _parent(root: Path) -> str:
    study = result(root)["study"]
    return str(runs(root, f"tags.`dlops.search.study` = '{study}'")[0].info.run_id)


def test_search_in_process_resumes_a_finished_study_without_new_trials(
    searched: Path, tmp_path: Path
) -> None:
    from dlops import stages

    root = tmp_path / "project"
    shutil.copytree(searched, root, symlinks=True)
    before = len(trial_runs(root))
    with mlflow_uris_restored():
        summary = stages.search(PAIR, root)
    assert summary["trials"]["total"] == SEARCH["trials"]
    assert len(trial_runs(root)) == before
    assert result(root) == result(searched)


def test_a_worker_on_another_process_joins_a_study_on_postgresql(searched: Path, tmp_path: Path) -> None:
    """The several-machines setup on one machine: the search and a `--join` worker share a study
    through DLOPS_OPTUNA_STORAGE (PostgreSQL); nothing is written to the default SQLite file."""
    import time

    import optuna
    from tests.integration.postgres_server import postgres_cluster

    root = tmp_path / "project"
    shutil.copytree(searched, root, symlinks=True)
    (root / ".dlops" / "optuna.db").unlink()
    params = yaml.safe_load((root / "params.yaml").read_text())
    never_prune = {"startup_trials": 8, "warmup_epochs": 10}  # trials long enough for the joiner to start
    params["models"][PAIR]["search"].update(seed=11, trials=8, epochs=10, pruner=never_prune)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with postgres_cluster(tmp_path / "postgres", databases=("optuna",)) as pg:
        env = {**project_env(root), "DLOPS_OPTUNA_STORAGE": pg.uri("optuna")}
        command = ["dlops", "search", PAIR]
        main = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not optuna.get_all_study_names(pg.uri("optuna")) and time.monotonic() < deadline:
            time.sleep(0.5)
        joined = subprocess.run(
            [*command, "--join", "--worker", "1"], cwd=root, env=env, capture_output=True, text=True
        )
        _, main_err = main.communicate(timeout=600)
        assert main.returncode == 0, main_err[-3000:]
        assert joined.returncode == 0, joined.stderr[-3000:]
        (name,) = optuna.get_all_study_names(pg.uri("optuna"))
        assert name == result(root)["study"]
        study = optuna.load_study(study_name=name, storage=pg.uri("optuna"))
        assert len(study.trials) >= 8
    assert not (root / ".dlops" / "optuna.db").exists()
    workers = {
        t.data.tags["dlops.search.worker"]
        for t in trial_runs(root)
        if t.data.tags.get("mlflow.parentRunId") == _parent(root)
    }
    assert workers == {"0", "1"}


def test_a_fine_tuning_search_starts_every_trial_from_the_parent(searched: Path, tmp_path: Path) -> None:
    """`train.init_from` a checkpoint file: each trial starts from it (its first epoch is already far
    better than a trial from scratch), and the file's content is part of the study's identity."""
    import optuna

    from dlops import stages
    from dlops.training.checkpoint import load_safe

    root = tmp_path / "project"
    shutil.copytree(searched, root, symlinks=True)
    (root / "parents").mkdir()
    shutil.copy(root / "models" / PAIR / "model.pt", root / "parents" / "mlp.pt")
    parent = load_safe(root / "parents" / "mlp.pt")
    params = yaml.safe_load((root / "params.yaml").read_text())
    entry = params["models"][PAIR]
    entry["model"].update(hidden_sizes=parent["model_config"]["hidden_sizes"])
    entry["model"].update(dropout=parent["model_config"]["dropout"])
    entry["train"].update(init_from="parents/mlp.pt", lr=0.001)
    entry["search"].update(trials=3, space={"train.lr": {"low": 0.0001, "high": 0.01, "log": True}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with mlflow_uris_restored():
        stages.search(PAIR, root)
    storage = f"sqlite:///{root / '.dlops' / 'optuna.db'}"

    def first_epoch(study: str) -> float:
        return optuna.load_study(study_name=study, storage=storage).trials[0].intermediate_values[1]

    tuned, scratch = result(root)["study"], result(searched)["study"]
    assert first_epoch(tuned) < first_epoch(scratch) - 0.05
    with (root / "parents" / "mlp.pt").open("ab") as handle:
        handle.write(b"\0")  # another parent file: another study, so train refuses the old result
    with pytest.raises(Exception, match="is from study"), mlflow_uris_restored():
        stages.train(PAIR, root)
