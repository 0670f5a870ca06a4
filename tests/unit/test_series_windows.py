"""Series preprocessing, continuity of batches, augmentation and serving forecasts, on hand-made tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from dlops.kinds.timeseries.augment import make_series_augment
from dlops.kinds.timeseries.continuity import continuity_problems
from dlops.kinds.timeseries.forecast import HistoryError, forecast_frame
from dlops.kinds.timeseries.preprocess import history_frame, read_windows, write_windows
from dlops.params import paths
from dlops.params.tasks_timeseries import SeriesTask


def task(**preprocess: Any) -> SeriesTask:
    return SeriesTask.model_validate(
        {
            "kind": "timeseries",
            "ingest": {"source": "synthetic-series", "frequency": "h"},
            "columns": {"sensitive": ["region"]},
            "validate": {"suite": "expectations/s.json"},
            "preprocess": {"lookback": 4, "horizon": 2, "backtest_folds": 2, "seasonality": 3, **preprocess},
            "augment": {},
        }
    )


def raw_table(n: int = 40, drop: tuple[int, ...] = ()) -> pd.DataFrame:
    """Two hourly series: A = 0, 1, 2, ... and B = 100 + 10 x step; `drop` removes steps of A."""
    stamps = pd.date_range("2025-01-01", periods=n, freq="h")
    rows = []
    for name, region, values in (
        ("A", "calm", np.arange(n) * 1.0),
        ("B", "noisy", 100 + 10.0 * np.arange(n)),
    ):
        for i in range(n):
            if name == "A" and i in drop:
                continue
            rows.append({"series": name, "timestamp": stamps[i], "value": values[i], "region": region})
    frame = pd.DataFrame(rows)
    return frame.assign(source=frame["series"] + "@" + frame["timestamp"].astype(str))


def preprocessed(tmp_path: Path, raw: pd.DataFrame, cfg: SeriesTask) -> tuple[Any, dict[str, Any]]:
    p = paths(tmp_path)
    write_windows("s", cfg, raw, p)
    return p, json.loads(p.transform("s").read_text())


def test_split_is_by_time_and_scaling_sees_only_the_training_period(tmp_path: Path) -> None:
    cfg = task()
    p, transform = preprocessed(tmp_path, raw_table(), cfg)
    splits = {s: read_windows(p.image_split("s", s)) for s in ("train", "val", "test")}
    # 40 steps: test = last 4 (36..39), val = 4 before (32..35), train targets end before 32
    a = {s: d["origin"][d["series"] == "A"] for s, d in splits.items()}
    assert a["test"].tolist() == [36, 37, 38]  # every origin whose 2 targets lie in the test period
    assert a["val"].tolist() == [32, 33, 34]
    assert a["train"].min() == 4 and a["train"].max() == 30  # targets 30, 31: the last training steps
    assert transform["series"]["A"]["loc"] == pytest.approx(np.arange(32).mean())
    # changing the test period's values leaves the scaling (and every training window) as it was
    changed = raw_table()
    changed.loc[(changed["series"] == "A") & (changed["timestamp"] >= "2025-01-02 12:00"), "value"] = 1e6
    p2, transform2 = preprocessed(tmp_path / "changed", changed, cfg)
    assert transform2["series"]["A"] == transform["series"]["A"]
    np.testing.assert_array_equal(read_windows(p2.image_split("s", "train"))["x"], splits["train"]["x"])


def test_windows_hold_scaled_inputs_targets_and_the_references(tmp_path: Path) -> None:
    p, transform = preprocessed(tmp_path, raw_table(), task())
    test = read_windows(p.image_split("s", "test"))
    i = int(np.flatnonzero((test["series"] == "B") & (test["origin"] == 36))[0])
    loc, scale = transform["series"]["B"]["loc"], transform["series"]["B"]["scale"]
    np.testing.assert_allclose(test["x"][i, :, 0] * scale + loc, 100 + 10.0 * np.arange(32, 36), rtol=1e-5)
    np.testing.assert_allclose(test["actual"][i], [460.0, 470.0])
    np.testing.assert_allclose(test["y"][i] * scale + loc, [460.0, 470.0], rtol=1e-5)
    np.testing.assert_allclose(test["naive"][i], [450.0, 450.0])  # the last value seen
    np.testing.assert_allclose(test["snaive"][i], [430.0, 440.0])  # one season (3 steps) back
    # MASE scale: mean |y_t - y_{t-3}| over B's training period = 30
    assert transform["series"]["B"]["mase_scale"] == pytest.approx(30.0)
    assert test["groups"]["region"][i] == "noisy"
    assert transform["input_shape"] == [4, 1] and transform["horizon"] == 2


def test_missing_steps_are_interpolated_or_masked_as_declared(tmp_path: Path) -> None:
    raw = raw_table(drop=(37,))
    p, _ = preprocessed(tmp_path / "i", raw, task())
    test = read_windows(p.image_split("s", "test"))
    i = int(np.flatnonzero((test["series"] == "A") & (test["origin"] == 36))[0])
    assert test["actual"][i].tolist() == [36.0, 37.0]  # interpolated
    p, transform = preprocessed(tmp_path / "m", raw, task(missing="mask"))
    test = read_windows(p.image_split("s", "test"))
    i = int(np.flatnonzero((test["series"] == "A") & (test["origin"] == 36))[0])
    assert np.isnan(test["y"][i, 1]) and test["actual"][i, 0] == 36.0  # not scored
    assert transform["features"] == ["value", "observed"]
    j = int(np.flatnonzero((test["series"] == "A") & (test["origin"] == 38))[0])
    assert test["x"][j, :, 1].tolist() == [1.0, 1.0, 1.0, 0.0]  # inputs 34..37: 37 was not observed


def test_a_series_too_short_is_named(tmp_path: Path) -> None:
    raw = pd.concat([raw_table(), raw_table(12).query("series == 'A'").assign(series="tiny")])
    with pytest.raises(ValueError, match=r"series 'tiny' has 12 steps.*at least 14"):
        preprocessed(tmp_path, raw, task())


def test_history_frame_stops_before_the_test_period(tmp_path: Path) -> None:
    p, _ = preprocessed(tmp_path, raw_table(), task())
    history = history_frame(p, "s")
    assert history.groupby("series")["timestamp"].max().astype(str).tolist() == ["2025-01-02 11:00:00"] * 2
    assert set(history.columns) == {"series", "timestamp", "value", "region"}


def test_a_batch_must_continue_each_series() -> None:
    cfg = task(max_batch_gap=1)
    accepted = raw_table(10)
    later = raw_table(14).groupby("series").tail(4)  # steps 10..13: continues
    assert continuity_problems(cfg, accepted, later) == []
    overlap = raw_table(14).groupby("series").tail(6)  # steps 8..13
    problems = continuity_problems(cfg, accepted, overlap)
    assert len(problems) == 2 and "series 'A' starts at 2025-01-01 08:00:00" in problems[0]
    assert "already reaches 2025-01-01 09:00:00" in problems[0]
    skipped = raw_table(20).groupby("series").tail(6)  # steps 14..19: 4 steps skipped, 1 allowed
    assert "4 steps after" in continuity_problems(cfg, accepted, skipped)[0]
    new_series = raw_table(3).assign(series="C")
    assert continuity_problems(cfg, accepted, new_series) == []  # a new series starts its own history


def test_augment_jitters_and_scales_values_only() -> None:
    cfg = task().augment.model_copy(update={"jitter_std": 0.1, "scale_std": 0.2})
    augment = make_series_augment(cfg)
    assert augment is not None and make_series_augment(task().augment) is None
    x, y = torch.zeros(5, 4, 2) + 1.0, torch.ones(5, 2)
    out_x, out_y = augment(x, y, torch.Generator().manual_seed(0))
    again_x, _ = augment(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(out_x, again_x) and out_x.shape == x.shape
    assert torch.equal(out_x[..., 1], x[..., 1])  # covariates untouched
    assert not torch.equal(out_y, y) and out_y.shape == y.shape


class LastValue(torch.nn.Module):
    """Forecasts the last input value for every step (scaled units)."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, targets: Any = None, weights: Any = None) -> tuple[torch.Tensor, None]:
        return x[:, -1, :1].repeat(1, self.horizon), None


def test_forecast_frame_serves_each_series_with_intervals(tmp_path: Path) -> None:
    p, transform = preprocessed(tmp_path, raw_table(), task())
    history = history_frame(p, "s")
    intervals = {"level": 0.8, "quantiles": [0.5, 1.0]}
    out = forecast_frame(LastValue(2), transform, intervals, history)
    assert out["series"].tolist() == ["A", "A", "B", "B"] and out["step"].tolist() == [1, 2, 1, 2]
    assert out["timestamp"].astype(str).tolist()[:2] == ["2025-01-02 12:00:00", "2025-01-02 13:00:00"]
    np.testing.assert_allclose(out["forecast"], [35.0, 35.0, 450.0, 450.0], rtol=1e-5)
    scale_b = transform["series"]["B"]["scale"]
    np.testing.assert_allclose(out["upper"].iloc[3] - out["forecast"].iloc[3], 1.0 * scale_b, rtol=1e-5)
    unseen = history.assign(series="new")  # scaled by its own history
    assert len(forecast_frame(LastValue(2), transform, intervals, unseen)) == 2
    with pytest.raises(HistoryError, match="series 'A': 2 steps of history, the model reads 4"):
        forecast_frame(LastValue(2), transform, intervals, history.groupby("series").tail(2))
    with pytest.raises(HistoryError, match=r"lacks columns \['value'\]"):
        forecast_frame(LastValue(2), transform, intervals, history.drop(columns=["value"]))


def test_drift_compares_each_series_with_its_recent_training_window() -> None:
    from dlops.kinds.timeseries.drift import series_drift, summary

    cfg = task()
    reference = raw_table(40)
    same = raw_table(48).groupby("series").tail(8)
    calm = series_drift(cfg, reference, same)  # the trend goes on: not drift
    assert calm["series_shifted"] == [] and calm["new_series"] == []
    shifted = same.assign(value=same["value"] + np.where(same["series"] == "B", 1000.0, 0.0))
    report = series_drift(cfg, reference, shifted)
    assert report["drifted"] and report["series_shifted"] == ["B"] and report["series"][0]["series"] == "B"
    assert "### Timeseries drift: **drift detected**" in summary(report)
