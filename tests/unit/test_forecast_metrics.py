"""Forecast metrics, conformal intervals, backtest and group errors against hand-computed numbers;
the forecast figures are written (also from empty input) and byte-stable."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlops.kinds.timeseries import metrics as tm
from dlops.kinds.timeseries import plots as tp

A = np.array([[1.0, 2.0], [3.0, 4.0]])
F = np.array([[2.0, 2.0], [3.0, 6.0]])
S = np.array([1.0, 2.0])


# ------------------------------------------------------------------------------------ point forecasts
def test_forecast_metrics_by_hand() -> None:
    m = tm.forecast_metrics(A, F, S)
    assert m["mae"] == 0.75
    assert m["rmse"] == round(math.sqrt((1 + 0 + 0 + 4) / 4), 6)
    assert m["mase"] == 0.5  # (1/1 + 0 + 0 + 2/2) / 4
    assert m["smape"] == round((200 * 1 / 3 + 0 + 0 + 200 * 2 / 10) / 4, 6)
    assert (m["mae/h01"], m["mae/h02"], m["mase/h01"], m["mase/h02"]) == (0.5, 1.0, 0.5, 0.5)
    assert list(m) == ["mae", "rmse", "smape", "mase", "mae/h01", "mase/h01", "mae/h02", "mase/h02"]
    assert all(type(v) is float for v in m.values())


def test_missing_actuals_are_skipped() -> None:
    actual = np.array([[1.0, np.nan], [3.0, 4.0]])
    m = tm.forecast_metrics(actual, np.array([[2.0, np.nan], [3.0, 6.0]]), S)
    assert m["mae"] == 1.0 and m["mase"] == round(2 / 3, 6) and m["mae/h02"] == 2.0
    empty = tm.forecast_metrics(np.full((2, 2), np.nan), F, S)
    assert all(math.isnan(v) for v in empty.values())


def test_smape_of_zero_actual_and_forecast_counts_zero() -> None:
    m = tm.forecast_metrics(np.array([[0.0, 1.0]]), np.array([[0.0, 3.0]]), [1.0])
    assert m["smape"] == 50.0  # (0 + 200·2/4) / 2


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        tm.forecast_metrics(A, np.array([[np.nan, 2.0], [3.0, 6.0]]), S)
    with pytest.raises(ValueError, match="scale"):
        tm.forecast_metrics(A, F, [1.0, 0.0])
    with pytest.raises(ValueError, match=r"\(N, H\)"):
        tm.forecast_metrics(A, F[:, :1], S)


def test_perfect_forecast_and_skill() -> None:
    m = tm.forecast_metrics(A, A, S)
    assert m["mase"] == 0.0 and m["smape"] == 0.0 and tm.skill(m["mase"]) == 1.0
    assert tm.skill(0.25) == 0.75 and tm.skill(1.2) == -0.2


def test_seasonal_naive_is_exact_on_a_purely_seasonal_series() -> None:
    season, horizon = 4, 3
    pattern = np.array([1.0, 5.0, 2.0, 8.0])
    rng = np.random.default_rng(0)
    train = np.tile(pattern, 10) + rng.normal(0, 0.5, 40)  # noisy training period: scale > 0
    scale = np.mean(np.abs(train[season:] - train[:-season]))
    test = np.tile(pattern, 10)
    origins = np.arange(season, 30)
    actual = np.stack([test[o : o + horizon] for o in origins])
    snaive = np.stack([test[o - season + np.arange(horizon) % season] for o in origins])
    naive = np.stack([np.repeat(test[o - 1], horizon) for o in origins])
    ref = tm.reference_metrics(actual, naive, snaive, np.full(len(origins), scale))
    assert ref["snaive/mase"] == 0.0 and ref["snaive/mae"] == 0.0
    assert ref["naive/mase"] > 1.0 and set(ref) == {"naive/mase", "naive/mae", "snaive/mase", "snaive/mae"}


# ------------------------------------------------------------------------------------------- intervals
def test_conformal_quantile_by_hand() -> None:
    # step 1 scores |a - f| / scale: 0.1, 0.4, 0.2, 0.3; step 2 has none
    actual = np.array([[0.2, np.nan], [0.4, np.nan], [0.2, np.nan], [0.6, np.nan]])
    forecast = np.zeros((4, 2))
    scale = np.array([2.0, 1.0, 1.0, 2.0])
    assert tm.conformal_quantiles(actual, forecast, scale, 0.5) == [0.3, 0.3]  # ceil(5·0.5) = 3rd smallest
    assert tm.conformal_quantiles(actual, forecast, scale, 0.9) == [0.4, 0.4]  # rank 5 > n: the largest
    with pytest.raises(ValueError, match="no validation residuals"):
        tm.conformal_quantiles(np.full((2, 2), np.nan), forecast[:2], scale[:2], 0.8)


def test_intervals_and_coverage_by_hand() -> None:
    lower, upper = tm.intervals(np.array([[1.0, 1.0], [2.0, 2.0]]), np.array([1.0, 2.0]), [0.5, 1.0])
    np.testing.assert_allclose(lower, [[0.5, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(upper, [[1.5, 2.0], [3.0, 4.0]])
    actual = np.array([[1.5, 3.0], [0.0, np.nan]])  # inside (edge), outside, outside, missing
    c = tm.coverage(actual, lower, upper)
    assert c == {
        "coverage": round(1 / 3, 6),
        "interval_width": 1.666667,
        "coverage/h01": 0.5,
        "coverage/h02": 0.0,
    }
    r = tm.coverage_report(actual, lower, upper, 0.8)
    assert r["forecast/coverage_error"] == round(0.8 - 1 / 3, 6) and r["forecast/nominal"] == 0.8
    assert r["forecast/coverage/h01"] == 0.5 and r["forecast/interval_width"] == 1.666667


def test_conformal_coverage_on_gaussian_residuals() -> None:
    rng = np.random.default_rng(7)
    spread = np.array([1.0, 1.5, 2.5])  # the error grows with the step

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = rng.uniform(0.5, 2.0, n)
        forecast = rng.normal(10, 3, (n, 3))
        return forecast + rng.normal(size=(n, 3)) * spread * scale[:, None], forecast, scale

    q = tm.conformal_quantiles(*draw(2000), level=0.8)
    actual, forecast, scale = draw(2000)
    report = tm.coverage_report(actual, *tm.intervals(forecast, scale, q), level=0.8)
    assert report["forecast/coverage_error"] < 0.03
    assert all(abs(report[f"forecast/coverage/h0{h}"] - 0.8) < 0.04 for h in (1, 2, 3))
    assert q[0] < q[1] < q[2]


# -------------------------------------------------------------------------------------------- backtest
def test_backtest_folds_by_hand() -> None:
    origin = np.array([10, 10, 13, 13, 16, 16, 19, 11])  # 19: past the 3 folds; 11: no fold's cutoff
    error = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 5.0, 9.0, 9.0])
    actual = np.zeros((8, 2))
    flat, rows = tm.backtest(actual, actual + error[:, None], np.ones(8), origin, horizon=3, folds=3)
    assert [(r["fold"], r["cutoff"], r["mase"], r["windows"]) for r in rows] == [
        (0, 10, 1.0, 2),
        (1, 13, 2.0, 2),
        (2, 16, 4.0, 2),
    ]
    assert flat["backtest/folds"] == 3 and flat["backtest/mase_mean"] == round(7 / 3, 6)
    assert flat["backtest/mase_std"] == round(float(np.std([1.0, 2.0, 4.0])), 6)
    assert flat["backtest/mae_mean"] == flat["backtest/mase_mean"]  # scale 1
    more, _ = tm.backtest(actual, actual + error[:, None], np.ones(8), origin, horizon=3, folds=6)
    assert more["backtest/folds"] == 4  # cutoffs 22 and 25 hold no windows
    none, no_rows = tm.backtest(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), [], 3, 3)
    assert none["backtest/folds"] == 0 and no_rows == [] and math.isnan(none["backtest/mase_mean"])


# ---------------------------------------------------------------------------------------- group errors
def _groups_case(errors: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Series s0..: one (1, H) window per listed error of the series; actual 0, scale 1."""
    series = np.array([f"s{i}" for i, row in enumerate(errors) for _ in row])
    err = np.array([e for row in errors for e in row])[:, None] * np.ones((1, 2))
    return np.zeros_like(err), err, series


def test_group_gap_by_hand() -> None:
    actual, forecast, series = _groups_case([[1.0], [1.0], [2.0], [2.0]])
    groups = {"region": ["a", "a", "b", "b"], "size": ["x", "y", "x", "y"]}
    flat, table = tm.group_errors(actual, forecast, np.ones(4), groups, series=series)
    assert flat == {
        "fairness/region/error_gap": 0.5,
        "fairness/size/error_gap": 0.0,
        "fairness/group_error_gap": 0.5,
    }
    assert table[0] == {
        "attribute": "region",
        "group": "a",
        "error": 1.0,
        "mae": 1.0,
        "series": 2,
        "windows": 2,
    }
    assert [(r["attribute"], r["group"], r["error"]) for r in table[1:]] == [
        ("region", "b", 2.0),
        ("size", "x", 1.5),
        ("size", "y", 1.5),
    ]
    assert tm.group_errors(actual, forecast, np.ones(4), {}, series=series, bootstrap=50) == ({}, [])
    with pytest.raises(ValueError, match="whole series"):
        tm.group_errors(
            actual, forecast, np.ones(4), {"r": ["a", "a", "b", "b"]}, series=["s", "s", "s", "t"]
        )


def test_group_bootstrap_contains_the_estimate_and_is_seeded() -> None:
    rng = np.random.default_rng(3)
    errors = [list(rng.uniform(0, 1 + (i >= 10), 3)) for i in range(20)]
    actual, forecast, series = _groups_case(errors)
    groups = {"region": np.where(np.char.lstrip(series, "s").astype(int) < 10, "a", "b")}
    args = (actual, forecast, np.ones(len(series)), groups)
    flat, _ = tm.group_errors(*args, series=series, bootstrap=300, confidence=0.9, seed=1)
    key = "fairness/group_error_gap"
    assert flat[f"{key}/ci_low"] <= flat[key] <= flat[f"{key}/ci_high"]
    assert flat[f"{key}/ci_low"] < flat[f"{key}/ci_high"]
    assert flat == tm.group_errors(*args, series=series, bootstrap=300, confidence=0.9, seed=1)[0]
    assert flat != tm.group_errors(*args, series=series, bootstrap=300, confidence=0.9, seed=2)[0]


def test_group_bootstrap_resamples_whole_series() -> None:
    def width(errors: list[list[float]]) -> float:
        actual, forecast, series = _groups_case(errors)
        groups = {"g": ["a"] * 10 + ["b"] * 10}
        flat, _ = tm.group_errors(actual, forecast, np.ones(20), groups, series=series, bootstrap=400, seed=0)
        assert flat["fairness/group_error_gap"] == 0.5  # a: MASE 1, b: 0
        return flat["fairness/group_error_gap/ci_high"] - flat["fairness/group_error_gap/ci_low"]

    # group a: 5 series x 2 windows; b: 5 series x 2 windows with no error
    one_series = [[5.0, 5.0]] + [[0.0, 0.0]] * 4 + [[0.0, 0.0]] * 5
    per_series_equal = [[2.0, 0.0]] * 5 + [[0.0, 0.0]] * 5  # windows differ, series do not
    assert width(one_series) > 0.5
    assert width(per_series_equal) == 0.0


# ------------------------------------------------------------------------------------------------- plots
def _windows() -> list[dict]:
    stamps = np.arange("2024-01-01T00", "2024-01-01T06", dtype="datetime64[h]")
    out = []
    for name in ("north", "south"):
        for start in (0, 3):
            t = stamps[start : start + 3]
            actual = np.array([1.0, np.nan, 3.0]) + start
            out.append(dict(series=name, timestamps=t, actual=actual, forecast=np.full(3, 2.0 + start)))
            out[-1].update(lower=out[-1]["forecast"] - 1, upper=out[-1]["forecast"] + 1)
    return out


def test_plots_are_written_and_byte_stable(tmp_path: Path) -> None:
    windows = _windows()
    history = {"north": (np.arange("2023-12-31T18", "2024-01-01T00", dtype="datetime64[h]"), np.ones(6))}
    _, rows = tm.backtest(np.ones((4, 2)), np.zeros((4, 2)), np.ones(4), [0, 0, 2, 2], 2, 2)
    table = [dict(attribute="region", group="a", error=1.0, mae=1.0, series=2, windows=4)]
    table.append(dict(attribute="region", group="b", error=None, mae=None, series=1, windows=2))
    for run in ("one", "two"):
        tp.plot_forecasts(tmp_path / run / "forecasts.png", history, windows)
        tp.plot_backtest(tmp_path / run / "backtest.png", rows)
        tp.plot_group_errors(tmp_path / run / "groups.png", table)
    for name in ("forecasts.png", "backtest.png", "groups.png"):
        first = (tmp_path / "one" / name).read_bytes()
        assert first.startswith(b"\x89PNG") and first == (tmp_path / "two" / name).read_bytes()


def test_plots_of_empty_input(tmp_path: Path) -> None:
    paths = [
        tp.plot_forecasts(tmp_path / "f.png", {}, []),
        tp.plot_backtest(tmp_path / "b.png", []),
        tp.plot_group_errors(tmp_path / "g.png", []),
    ]
    assert all(p.stat().st_size > 0 and p.read_bytes().startswith(b"\x89PNG") for p in paths)


def test_forecast_rows_are_json_safe() -> None:
    rows = tp.forecast_rows(_windows())
    assert len(rows) == 12 and tp.forecast_rows([]) == []
    assert rows[1] == {
        "window": 0,
        "series": "north",
        "step": 2,
        "timestamp": "2024-01-01T01",
        "actual": None,
        "forecast": 2.0,
        "lower": 1.0,
        "upper": 3.0,
    }
    json.dumps(rows, allow_nan=False)
    bare = tp.forecast_rows([dict(series=1, timestamps=[5], actual=[1.0], forecast=[1.5])])
    assert bare == [
        dict(window=0, series="1", step=1, timestamp="5", actual=1.0, forecast=1.5, lower=None, upper=None)
    ]


def test_modules_do_not_import_torch() -> None:
    modules = "dlops.kinds.timeseries.metrics, dlops.kinds.timeseries.plots"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
