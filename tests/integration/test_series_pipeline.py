"""Forecasting through the whole DAG by params alone: the built-in series (6 short hourly series, the
three forecasters), a monthly single-series CSV (airline-passengers style) and an hourly multi-series
Parquet table (electricity-load style) with their own test periods; then serving from history, a
shuffled file stopped at validate and a batch that goes back in time quarantined."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.conftest import bin_path, make_project, project_env, tiny_params
from tests.integration.test_pipeline import client, dvc

pytestmark = pytest.mark.slow

SERIES_MODELS = ["series-mlp", "series-rnn", "series-transformer"]


def airline_csv(path: Path) -> None:
    """144 months of a multiplicative trend x yearly season, like the classic airline passengers."""
    months = pd.date_range("1949-01", periods=144, freq="MS")
    rng = np.random.default_rng(0)
    t = np.arange(144)
    season = 1 + 0.2 * np.sin(2 * np.pi * (t % 12) / 12 - 1.0)
    values = np.round((110 + 2.4 * t) * season * (1 + 0.02 * rng.standard_normal(144)))
    pd.DataFrame({"Month": months.strftime("%Y-%m"), "Passengers": values.astype(int)}).to_csv(
        path, index=False
    )


def load_parquet(path: Path) -> None:
    """Four meters, 28 days hourly, a temperature covariate and a zone attribute."""
    stamps = pd.date_range("2014-01-01", periods=24 * 28, freq="h")
    rng = np.random.default_rng(1)
    frames = []
    for i in range(4):
        hour = stamps.hour.to_numpy()
        temperature = 10 + 5 * np.sin(2 * np.pi * (hour - 14) / 24) + rng.standard_normal(len(stamps))
        load = 100 + 10 * i + 30 * np.sin(2 * np.pi * (hour - 8) / 24) - 1.5 * temperature
        load = load + (1 + i % 2) * 2 * rng.standard_normal(len(stamps))
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": stamps,
                    "meter": f"MT_{i:03d}",
                    "load": load,
                    "temperature": temperature,
                    "zone": "north" if i % 2 == 0 else "south",
                }
            )  # fmt: skip
        )
    pd.concat(frames).to_parquet(path, index=False)


def series_params() -> dict[str, Any]:
    raw = tiny_params(series=True)
    raw["tasks"].pop("tabular")
    raw["models"].pop("tabular-mlp")
    raw["retrain"]["batches"] = {}
    gates = copy.deepcopy(raw["models"]["series-mlp"]["gates"])
    base = {"evaluate": {"bootstrap": 50}, "gates": gates, "search": None}
    validate = {
        "draft_if_missing": True,
        "min_rows": 50,
        "max_missing_fraction": 0.05,
        "max_gap_fraction": 0.05,
    }
    raw["tasks"]["airline"] = {
        "kind": "timeseries",
        "ingest": {"source": "series-table", "path": "data/external/airline.csv", "timestamp": "Month",
                   "value": "Passengers", "frequency": "MS"},
        "columns": {"sensitive": []},
        "validate": {"suite": "expectations/airline.json", **validate},
        "preprocess": {"lookback": 24, "horizon": 12, "backtest_folds": 1},
        "augment": {},
    }  # fmt: skip
    raw["tasks"]["load"] = {
        "kind": "timeseries",
        "ingest": {"source": "series-table", "path": "data/external/load.parquet", "value": "load",
                   "series_id": "meter", "covariates": ["temperature"], "frequency": "h"},
        "columns": {"sensitive": ["zone"]},
        "validate": {"suite": "expectations/load.json", **validate},
        "preprocess": {"lookback": 48, "horizon": 24, "backtest_folds": 2, "gap": 1, "missing": "mask"},
        "augment": {"jitter_std": 0.05},
    }  # fmt: skip
    raw["models"]["airline-mlp"] = {
        "task": "airline", "family": "mlp", "model": {"hidden_sizes": [32], "dropout": 0.0},
        "train": {"epochs": 30, "batch_size": 16, "lr": 0.003, "patience": 10, "seed": 42}, **base,
        "gates": {**gates, "max_group_error_gap": None},  # one series: no groups
    }  # fmt: skip
    raw["models"]["load-rnn"] = {
        "task": "load", "family": "rnn",
        "model": {"cell": "gru", "embedding_dim": 8, "hidden_size": 16, "bidirectional": False,
                  "pooling": "last", "dropout": 0.0},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.003, "patience": 3, "seed": 42}, **base,
    }  # fmt: skip
    return raw


@pytest.fixture(scope="module")
def series_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("series") / "project"
    (root / "data" / "external").mkdir(parents=True)
    airline_csv(root / "data" / "external" / "airline.csv")
    load_parquet(root / "data" / "external" / "load.parquet")
    make_project(root, series_params())
    env = {**project_env(root), "DLOPS_RECORD_IMPORTS": str(root.parent / "imports")}
    proc = subprocess.run([bin_path("dvc"), "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def metrics(root: Path, pair: str) -> dict[str, Any]:
    return json.loads((root / f"reports/evaluate/{pair}/metrics.json").read_text())


def test_every_forecaster_is_evaluated_and_registered_with_its_gates(series_project: Path) -> None:
    for pair in [*SERIES_MODELS, "airline-mlp", "load-rnn"]:
        scores = metrics(series_project, pair)
        for key in ("test/mase", "test/smape", "test/mae", "test/rmse", "test/mase/h01", "test/snaive/mase",
                    "forecast/coverage", "backtest/mase_mean", "overfit/diagnosis"):  # fmt: skip
            assert key in scores, (pair, key)
        assert scores["test/forecast_skill"] == pytest.approx(1 - scores["test/mase"], abs=1e-6)
        version = client(series_project).get_model_version_by_alias(f"dlops-{pair}", "champion")
        assert version.tags["gate.max_mase.passed"] == "true", pair
        assert "data.version" in version.tags
    series = metrics(series_project, "series-rnn")
    assert "fairness/group_error_gap" in series and "fairness/region/error_gap" in series
    fairness = json.loads((series_project / "reports/evaluate/series-rnn/fairness.json").read_text())
    assert {row["group"] for row in fairness["region"]} == {"calm", "noisy"}
    noisy, calm = (
        next(r["relative_error"] for r in fairness["region"] if r["group"] == g) for g in ("noisy", "calm")
    )
    assert noisy > calm  # the generator's noisier region is served worse
    assert (series_project / "reports/evaluate/series-rnn/figures/forecasts.png").is_file()
    assert metrics(series_project, "airline-mlp")["backtest/folds"] == 1
    assert "up to date" in dvc(series_project, "repro").stdout


def test_the_registered_forecaster_serves_history(series_project: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{series_project}/mlflow.db")
    history = pd.read_parquet(series_project / "data/processed/series/series.parquet")
    history = history[history["split"] != "test"].drop(columns=["split"]).dropna(subset=["value"])
    out = mlflow.pyfunc.load_model("models:/dlops-series-rnn@champion").predict(history)
    assert len(out) == 6 * 6 and list(out.columns)[:3] == ["series", "step", "timestamp"]
    assert (out["lower"] <= out["forecast"]).all() and (out["forecast"] <= out["upper"]).all()
    load = pd.read_parquet(series_project / "data/external/load.parquet").rename(
        columns={"meter": "series", "load": "value"}
    )
    served = mlflow.pyfunc.load_model("models:/dlops-load-rnn@champion").predict(load)
    assert len(served) == 4 * 24 and served["timestamp"].min() == pd.Timestamp("2014-01-29 00:00")


def test_every_dlops_module_a_series_stage_imported_is_in_its_deps(series_project: Path) -> None:
    from tests.projects import uncovered_imports

    assert uncovered_imports(series_project, series_project.parent / "imports") == {}


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bin_path("dlops"), *args],
        cwd=root,
        env=project_env(root),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_shuffled_or_duplicated_file_stops_at_validate_naming_series_and_time(series_project: Path) -> None:
    drafted = json.loads((series_project / "expectations/airline.json").read_text())
    assert drafted["meta"]["dlops"]["validate"]["max_gap_fraction"] == 0.05  # what its limits came from
    table = pd.read_csv(series_project / "data/external/airline.csv")
    shuffled = pd.concat([table.iloc[:50], table.iloc[[60, 50]], table.iloc[51:60], table.iloc[61:]])
    shuffled.to_csv(series_project / "data/external/airline.csv", index=False)
    assert run_cli(series_project, "ingest", "airline").returncode == 0
    result = run_cli(series_project, "validate", "airline")
    assert result.returncode != 0
    assert "sorted" in result.stderr and "at: Passengers@1953-03" in result.stderr  # after 1954-01
    duplicated = pd.concat([table, table.iloc[[70]]])
    duplicated.to_csv(series_project / "data/external/airline.csv", index=False)
    assert run_cli(series_project, "ingest", "airline").returncode == 0
    result = run_cli(series_project, "validate", "airline")
    assert result.returncode != 0 and "Passengers@1954-11" in result.stderr
    table.to_csv(series_project / "data/external/airline.csv", index=False)


def test_a_batch_that_goes_back_in_time_is_quarantined(series_project: Path) -> None:
    spec = json.dumps({"source": "synthetic-series", "offset": 24 * 10, "length": 48})
    result = run_cli(series_project, "batch", "add", "series", "--spec", spec, "--date", "2025-02-03")
    assert result.returncode == 65, result.stderr
    assert "already reaches" in result.stderr and "quarantined" in result.stderr
    spec = json.dumps({"source": "synthetic-series", "offset": 24 * 14, "length": 48})
    result = run_cli(series_project, "batch", "add", "series", "--spec", spec, "--date", "2025-02-03")
    assert result.returncode == 0, result.stderr
