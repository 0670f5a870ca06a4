"""The evaluation of a forecaster on a series task: errors on every split (MAE, RMSE, sMAPE, MASE, per
horizon step), the naive and seasonal-naive references, a rolling-origin backtest over the test period,
conformal prediction intervals fitted on validation residuals with their test coverage, errors by series
group with bootstrap intervals, the overfitting diagnosis, and the figures and plot data of each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlops.evaluation import plots as common_plots
from dlops.evaluation.overfitting import diagnose
from dlops.evaluation.report import clean
from dlops.files import write_json
from dlops.kinds.timeseries import metrics, plots
from dlops.kinds.timeseries.forecast import predict_scaled
from dlops.kinds.timeseries.preprocess import SPLITS, read_windows, series_file

DEFAULT_SKILL_GAP = 0.15  # train - test forecast skill called overfitting when the gates set none
PLOTTED_SERIES = 4


def forecasts(model: Any, data: dict[str, Any]) -> np.ndarray:
    """Forecasts (N, H) in the series' own units."""
    return predict_scaled(model, data["x"]) * data["scale"][:, None] + data["loc"][:, None]


def evaluate_forecaster(model: Any, p: Any, entry: Any, history: dict[str, Any], out: Path) -> dict[str, Any]:
    import json

    transform = json.loads(p.transform(entry.task).read_text())
    splits = {split: read_windows(p.image_split(entry.task, split)) for split in SPLITS}
    predicted = {split: forecasts(model, data) for split, data in splits.items()}
    scores: dict[str, Any] = {}
    for split, data in splits.items():
        found = metrics.forecast_metrics(data["actual"], predicted[split], data["mase_scale"])
        found["forecast_skill"] = metrics.skill(found["mase"])
        scores.update({f"{split}/{key}": value for key, value in found.items()})
    test, forecast = splits["test"], predicted["test"]
    references = metrics.reference_metrics(test["actual"], test["naive"], test["snaive"], test["mase_scale"])
    scores.update({f"test/{key}": value for key, value in references.items()})

    val = splits["val"]
    level = float(transform["interval"])
    quantiles = metrics.conformal_quantiles(val["actual"], predicted["val"], val["scale"], level)
    lower, upper = metrics.intervals(forecast, test["scale"], quantiles)
    scores.update(metrics.coverage_report(test["actual"], lower, upper, level))
    write_json(out / "intervals.json", {"level": level, "quantiles": quantiles, "scale": "series std"})

    folds, fold_rows = _backtest(test, forecast, int(transform["horizon"]), int(transform["backtest_folds"]))
    scores.update(folds)
    group_scores, table = _group_errors(test, forecast, entry)
    scores.update(group_scores)
    if entry.evaluate.bootstrap:
        scores["bootstrap/confidence"] = entry.evaluate.confidence
    gap = entry.gates.max_overfit_gap
    limit = DEFAULT_SKILL_GAP if gap is None else gap
    scores.update(diagnose(history, scores, "forecast_skill", limit, underfit_below=0.0))

    figures = out / "figures"
    windows = _plotted_windows(test, forecast, lower, upper)
    plots.plot_forecasts(figures / "forecasts.png", _history(p, entry.task, windows), windows)
    plots.plot_backtest(figures / "backtest.png", fold_rows)
    plots.plot_group_errors(figures / "group_errors.png", table, "relative_error", "relative error")
    common_plots.plot_learning_curves(figures, history)
    write_json(out / "fairness.json", _by_attribute(table))
    write_json(out / "backtest.json", {"folds": fold_rows})
    write_json(out / "forecast.json", {"forecast": plots.forecast_rows(windows)})
    write_json(out / "mitigation.json", {"reweigh": [], "postprocess": None})
    write_json(out / "interpretation.json", {})
    write_json(out / "confusion.json", {})
    write_json(out / "roc.json", {"roc": []})
    write_json(out / "calibration.json", {"calibration": []})
    write_json(out / "learning_curve.json", {"history": common_plots.history_rows(history)})
    _write_predictions(out / "predictions.csv", test, forecast)
    return {key: clean(value) for key, value in scores.items()}


def _group_errors(
    test: dict[str, Any], forecast: np.ndarray, entry: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Errors by series group: the gap is on the relative error (|error| / the series' training level),
    what a group feels as "served worse"; MASE per group beside it. MASE alone would hide a noisier
    group, since its seasonal-naive reference is as much worse as the model."""
    cfg, groups = entry.evaluate, dict(test["groups"])
    relative, table = metrics.group_errors(
        test["actual"], forecast, test["level"], groups, series=test["series"],
        bootstrap=cfg.bootstrap, confidence=cfg.confidence, seed=entry.train.seed,
    )  # fmt: skip
    _, mase = metrics.group_errors(
        test["actual"], forecast, test["mase_scale"], groups, series=test["series"]
    )
    for row, scaled in zip(table, mase, strict=True):
        row["relative_error"] = row.pop("error")
        row["mase"] = scaled["error"]
    return relative, table


def _by_attribute(table: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The group table as the model card reads it: {attribute: [{group, count, mase, ...}]}."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in table:
        rest = {k: v for k, v in row.items() if k not in ("attribute", "group", "windows")}
        group = {"group": row["group"], "count": row["windows"], **rest}
        out.setdefault(str(row["attribute"]), []).append(group)
    return out


def _backtest(
    test: dict[str, Any], forecast: np.ndarray, horizon: int, folds: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return metrics.backtest(test["actual"], forecast, test["mase_scale"], test["origin"], horizon, folds)


def _plotted_windows(
    test: dict[str, Any], forecast: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> list[dict[str, Any]]:
    """The first test window of the first few series, with timestamps, for the forecast figure."""
    import pandas as pd

    picked = []
    for name in sorted(set(test["series"].tolist()))[:PLOTTED_SERIES]:
        i = int(np.flatnonzero(test["series"] == name)[0])
        start = pd.Timestamp(int(test["origin_time"][i]))
        step = _step(test, name)
        stamps = [start + k * step for k in range(forecast.shape[1])]
        picked.append(
            {
                "series": str(name),
                "timestamps": stamps,
                "actual": test["actual"][i],
                "forecast": forecast[i],
                "lower": lower[i],
                "upper": upper[i],
            }
        )
    return picked


def _step(test: dict[str, Any], name: str) -> Any:
    import pandas as pd

    times = test["origin_time"][(test["series"] == name)]
    return pd.Timedelta(int(times[1] - times[0])) if len(times) > 1 else pd.Timedelta(0)


def _history(p: Any, task: str, windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The few plotted series' values over the periods before and in the test windows."""
    import pandas as pd

    grid = pd.read_parquet(series_file(p, task))
    out = {}
    for window in windows:
        rows = grid[(grid["series"] == window["series"]) & (grid["timestamp"] <= window["timestamps"][-1])]
        rows = rows.tail(4 * len(window["timestamps"]) + 48)
        out[window["series"]] = (rows["timestamp"].tolist(), rows["value"].to_numpy())
    return out


def _write_predictions(path: Path, test: dict[str, Any], forecast: np.ndarray) -> None:
    """One row per test window and step: the series, step, actual and forecast (rounded)."""
    import pandas as pd

    n, h = forecast.shape
    frame = pd.DataFrame(
        {
            "series": np.repeat(test["series"], h),
            "step": np.tile(np.arange(1, h + 1), n),
            "actual": np.round(test["actual"].ravel(), 6),
            "predicted": np.round(forecast.ravel(), 6),
        }
    )
    frame.to_csv(path, index=False, lineterminator="\n")
