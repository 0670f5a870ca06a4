"""dag.yaml: what dvc.yaml reads of params.yaml (kinds, input files), and the stop when it is stale."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.conftest import tiny_params

from dlops import dag
from dlops.params import ConfigError, load_params, paths


def _project(root: Path, raw: dict) -> tuple:  # type: ignore[type-arg]
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    p = paths(root)
    return load_params(p.params), p


def test_each_task_names_its_kind_and_input_files_and_each_model_its_kind(tmp_path: Path) -> None:
    raw = tiny_params(images=True)
    raw["tasks"]["tabular"]["ingest"] = {"source": "table", "path": "data/input/census.csv"}
    raw["tasks"]["images"]["ingest"] = {
        "source": "idx",
        "images": "data/input/train-images-idx3-ubyte",
        "labels": "data/input/train-labels-idx1-ubyte",
        "size": 8,
    }
    params, p = _project(tmp_path, raw)
    tasks = dag.render(params, p.root)["dag"]["tasks"]
    assert tasks["tabular"] == {
        "kind": "tabular",
        "input_1": "data/input/census.csv",
        "input_2": "src/dlops/kinds/tabular",  # unused slots repeat the kind's own code
        "input_3": "src/dlops/kinds/tabular",
        "suite": "expectations/tabular.json",
    }
    assert [tasks["images"][f"input_{i}"] for i in (1, 2, 3)] == [
        "data/input/train-images-idx3-ubyte",
        "data/input/train-labels-idx1-ubyte",
        "src/dlops/kinds/images",
    ]
    assert tasks["text"]["input_1"] == "src/dlops/kinds/text"  # the built-in grammar reads no file
    models = dag.render(params, p.root)["dag"]["models"]
    assert models["text-rnn"] == {
        "task": "text",
        "kind": "text",
        "family": "rnn",
        "search_result": "src/dlops/models/rnn.py",  # no search: train's slot repeats its family file
    }


def test_only_models_with_a_search_get_a_search_stage(tmp_path: Path) -> None:
    raw = tiny_params()
    raw["models"]["tabular-mlp"]["search"] = {"trials": 2, "space": {"train.lr": {"low": 1e-4, "high": 1e-2}}}
    params, p = _project(tmp_path, raw)
    rendered = dag.render(params, p.root)["dag"]
    assert list(rendered["searches"]) == ["tabular-mlp"]
    assert rendered["models"]["tabular-mlp"]["search_result"] == "reports/search/tabular-mlp.json"
    assert rendered["searches"]["tabular-mlp"] == rendered["models"]["tabular-mlp"]


def test_a_study_names_its_encoder_file_and_entry(tmp_path: Path) -> None:
    raw = tiny_params(images=True)
    raw["pretraining"]["masked"] = {"task": "text", "classifier": "text-rnn"}
    params, p = _project(tmp_path, raw)
    studies = dag.render(params, p.root)["dag"]["pretraining"]
    assert studies["masked"] == {  # no encoder entry: the classifier's own entry and family file
        "task": "text",
        "kind": "text",
        "classifier": "text-rnn",
        "encoder": "text-rnn",
        "encoder_file": "src/dlops/models/rnn.py",
    }
    assert studies["images-cnn-from-autoencoder"]["encoder_file"] == "models/images-autoencoder/model.pt"


def test_a_stale_dag_is_an_error_naming_the_command(tmp_path: Path) -> None:
    params, p = _project(tmp_path, tiny_params())
    with pytest.raises(ConfigError, match=r"dag.yaml is missing: run `dlops dag`"):
        dag.check(params, p)
    assert dag.write(params, p) and not dag.write(params, p)  # written once, then up to date
    dag.check(params, p)
    raw = tiny_params()
    raw["tasks"]["tabular"]["ingest"] = {"source": "table", "path": "data/input/census.csv"}
    params, p = _project(tmp_path, raw)
    with pytest.raises(ConfigError, match=r"dag.yaml does not match params.yaml: run `dlops dag`"):
        dag.check(params, p)


def test_the_committed_dag_matches_the_committed_params() -> None:
    from tests.conftest import REPO

    p = paths(REPO)
    dag.check(load_params(p.params), p)


def test_the_committed_lock_records_the_committed_code_params_and_inputs() -> None:
    """dvc.lock holds, for every stage, the hash of each dependency the pipeline does not produce itself
    (its code, params and committed input files) as they are committed: a change to any of them
    without rerunning (or, for a change that leaves outputs as they are, relocking) its stages would
    make a user's `dvc repro` rerun them and `dvc status` report them changed."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo
    from tests.conftest import REPO

    stages = list(Repo(str(REPO)).index.stages)
    produced = {str(out.def_path) for stage in stages for out in stage.outs}
    stale = [
        f"{stage.addressing}: {dep.def_path}" + (" (params)" if isinstance(dep, ParamsDependency) else "")
        for stage in stages
        for dep in stage.deps
        if str(dep.def_path) not in produced and dep.hash_info != dep.get_hash()
    ]
    assert stale == [], (
        f"dvc.lock is stale for {len(stale)} dependencies (rerun them: `dlops run`), e.g. {stale[:5]}"
    )


def test_a_missing_input_file_is_named_with_its_key_before_dvc_runs(tmp_path: Path) -> None:
    from dlops.data.inputs import DataSourceError

    raw = tiny_params()
    raw["tasks"]["tabular"]["ingest"] = {"source": "table", "path": "data/input/income.csv"}
    (tmp_path / "data" / "input").mkdir(parents=True)
    (tmp_path / "data" / "input" / "income.csv").write_text("age,income\n")
    params, p = _project(tmp_path, raw)
    dag.check_inputs(params, p.root)  # every input is there

    raw["tasks"]["tabular"]["ingest"]["test"] = {"path": "data/input/income.test"}
    params, p = _project(tmp_path, raw)
    with pytest.raises(DataSourceError, match=r"tasks\.tabular\.ingest: data/input/income\.test: not found"):
        dag.check_inputs(params, p.root)


def test_plots_declare_what_each_model_has_and_one_roc_overlay_per_task() -> None:
    """reports/dvc.yaml: learning curves and figures for every model; calibration and confusion for
    classifiers; predicted against actual for forecasters; no ROC for a GAN or a forecaster."""
    root = Path(__file__).resolve().parents[2]
    params = load_params(paths(root).params)
    declared = dag.plots(params)
    paths_ = {item if isinstance(item, str) else next(iter(item)) for item in declared}
    for name in params.models:
        assert f"train/{name}/history.json" in paths_ and f"evaluate/{name}/figures" in paths_
    entry = {next(iter(item)): next(iter(item.values())) for item in declared if isinstance(item, dict)}
    assert entry["train/text-rnn/history.json"]["y"] == ["train/loss", "val/loss"]
    assert entry["evaluate/text-rnn/calibration.json"] == {
        "x": "confidence", "y": "accuracy", "title": "text-rnn: calibration (test)",
        "x_label": "mean confidence", "y_label": "accuracy",
    }  # fmt: skip
    assert "evaluate/images-gan/calibration.json" not in entry
    assert "evaluate/images-autoencoder/calibration.json" not in entry
    assert entry["evaluate/series-rnn/predictions.csv"]["template"] == "scatter"
    assert entry["evaluate/images-cnn/predictions.csv"]["template"] == "confusion"
    roc = entry["images: ROC of every classifier (test)"]["y"]
    assert set(roc) == {f"evaluate/{m}/roc.json" for m in ("images-cnn", "images-mlp", "images-mlp-private")}
    anomaly = entry["images: anomaly ROC (test)"]["y"]
    assert set(anomaly) == {"evaluate/images-autoencoder/roc.json", "evaluate/images-vae/roc.json"}
    assert not any("series" in title for title in entry if "ROC" in title)  # forecasters have no ROC
    assert (root / "reports/dvc.yaml").read_text() == dag.plots_text(params)  # committed and current
