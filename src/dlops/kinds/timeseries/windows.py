"""From the raw table to forecasting windows: a regular time grid per series, a split by time (never
shuffled), per-series scaling fitted on the training period only, and (lookback -> horizon) windows.

Each series on its grid of n steps is cut, from the end: the last `test` steps are the test period,
`gap` steps left out, `val` steps of validation, `gap` steps left out, the rest is training. A window
whose first target step (its origin) is o reads inputs [o - lookback, o) and predicts [o, o + horizon);
it belongs to the split that holds all its targets. Inputs may reach back into earlier periods: that
history is known when the forecast is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = ("series", "timestamp", "value")


@dataclass
class SeriesGrid:
    """One series on its regular grid: values (NaN where missing), covariates and attributes."""

    name: str
    timestamps: pd.DatetimeIndex
    values: np.ndarray  # (n,) float64, NaN = no observation
    covariates: np.ndarray  # (n, C) float64, interpolated
    attributes: dict[str, str]


def regular_grids(
    raw: pd.DataFrame, frequency: str, covariates: list[str], attributes: list[str]
) -> list[SeriesGrid]:
    """Every series reindexed onto `frequency` steps from its first to its last timestamp, in series
    order; rows without a timestamp are dropped, a duplicated timestamp keeps its last value."""
    frame = raw.dropna(subset=["timestamp"]).sort_values(["series", "timestamp"], kind="stable")
    frame = frame.drop_duplicates(["series", "timestamp"], keep="last")
    grids = []
    for name, rows in frame.groupby("series", sort=True):
        index = pd.date_range(rows["timestamp"].iloc[0], rows["timestamp"].iloc[-1], freq=frequency)
        on_grid = rows.set_index("timestamp").reindex(index)
        covs = on_grid[covariates].astype(float).interpolate(limit_direction="both").fillna(0.0)
        grids.append(
            SeriesGrid(
                name=str(name),
                timestamps=index,
                values=on_grid["value"].to_numpy(dtype=np.float64),
                covariates=covs.to_numpy(dtype=np.float64).reshape(len(index), len(covariates)),
                attributes={a: str(rows[a].iloc[0]) for a in attributes},
            )
        )
    return grids


@dataclass(frozen=True)
class Periods:
    """Where a series of n steps is cut (indices on its grid); see the module docstring."""

    train_end: int
    val_start: int
    val_end: int
    test_start: int
    n: int

    @classmethod
    def of(cls, n: int, val: int, test: int, gap: int) -> Periods:
        test_start = n - test
        val_end = test_start - gap
        val_start = val_end - val
        return cls(
            train_end=val_start - gap, val_start=val_start, val_end=val_end, test_start=test_start, n=n
        )


def filled(values: np.ndarray) -> np.ndarray:
    """Missing steps filled by linear interpolation in time (constant beyond the ends)."""
    series = pd.Series(values)
    return series.interpolate(limit_direction="both").fillna(0.0).to_numpy(dtype=np.float64)


def scaler(values: np.ndarray, method: str) -> tuple[float, float]:
    """(loc, scale) of a series' training-period values; `none` keeps the units."""
    seen = values[np.isfinite(values)]
    if method == "none" or len(seen) == 0:
        return 0.0, 1.0
    spread = float(seen.std())
    return float(seen.mean()), spread if spread > 1e-8 else 1.0


def seasonal_scale(values: np.ndarray, season: int) -> float:
    """The MASE denominator: mean |y_t - y_{t-m}| over the training period (the in-sample error of the
    seasonal-naive forecast); m falls back to 1 when the period is shorter than two seasons."""
    m = season if len(values) > 2 * season else 1
    diffs = np.abs(values[m:] - values[:-m])
    diffs = diffs[np.isfinite(diffs)]
    scale = float(diffs.mean()) if len(diffs) else 0.0
    return scale if scale > 1e-8 else 1.0


def covariate_scaling(grids: list[SeriesGrid], train_ends: list[int]) -> dict[str, list[float]]:
    """Mean and std of each covariate over every series' training period (one scaling for all)."""
    rows = [grid.covariates[:end] for grid, end in zip(grids, train_ends, strict=True)]
    stacked = np.concatenate(rows) if rows else np.zeros((0, 0))
    if stacked.size == 0:
        width = grids[0].covariates.shape[1] if grids else 0
        return {"loc": [0.0] * width, "scale": [1.0] * width}
    spread = stacked.std(axis=0)
    return {"loc": stacked.mean(axis=0).tolist(), "scale": np.where(spread > 1e-8, spread, 1.0).tolist()}


def scaled_covariates(covariates: np.ndarray, transform: dict[str, Any]) -> np.ndarray:
    """Covariates (n, C) scaled as the training period's statistics in transform.json say."""
    scaling = transform["covariate_scaling"]
    return (covariates - np.asarray(scaling["loc"])) / np.asarray(scaling["scale"])


def windows_of(
    grid: SeriesGrid,
    periods: Periods,
    cfg: Any,
    season: int,
    loc_scale: tuple[float, float],
    mase_scale: float,
    transform: dict[str, Any],
) -> dict[str, dict[str, np.ndarray]]:
    """The series' windows by split: inputs x (N, L, F) scaled, targets y (N, H) scaled (NaN where no
    observation), and per window its origin, scaling, MASE scale and the naive and seasonal-naive
    forecasts in original units."""
    lookback, horizon = cfg.lookback, cfg.horizon
    observed = np.isfinite(grid.values)
    values = filled(grid.values)
    loc, scale = loc_scale
    seen = np.abs(grid.values[: periods.train_end])
    level = float(np.nanmean(seen)) if np.isfinite(seen).any() else 1.0
    level = level if level > 1e-8 else 1.0  # the relative error's denominator: the training level
    scaled = (values - loc) / scale
    features = [scaled[:, None]]
    if grid.covariates.shape[1]:
        features.append(scaled_covariates(grid.covariates, transform))
    if cfg.missing == "mask":
        features.append(observed[:, None].astype(np.float64))
    inputs = np.concatenate(features, axis=1)  # (n, F)
    targets = values if cfg.missing == "interpolate" else np.where(observed, values, np.nan)
    ranges = {
        "train": (lookback, periods.train_end - horizon, cfg.stride),
        "val": (max(lookback, periods.val_start), periods.val_end - horizon, 1),
        "test": (max(lookback, periods.test_start), periods.n - horizon, 1),
    }
    out = {}
    for split, (first, last, step) in ranges.items():
        origins = np.arange(first, last + 1, step, dtype=np.int64)
        out[split] = _windows(inputs, targets, values, origins, lookback, horizon, season)
        out[split].update(
            origin=origins,
            loc=np.full(len(origins), loc),
            scale=np.full(len(origins), scale),
            mase_scale=np.full(len(origins), mase_scale),
            level=np.full(len(origins), level),
        )
    return out


def _windows(
    inputs: np.ndarray,
    targets: np.ndarray,
    values: np.ndarray,
    origins: np.ndarray,
    lookback: int,
    horizon: int,
    season: int,
) -> dict[str, np.ndarray]:
    steps = np.arange(horizon)
    back = origins[:, None] + np.arange(-lookback, 0)  # (N, L)
    ahead = origins[:, None] + steps  # (N, H)
    seasonal = origins[:, None] - season + (steps % season)  # (N, H): the last season seen
    seasonal = np.where(seasonal >= 0, seasonal, origins[:, None] - 1)  # no season yet: the last value
    return {
        "x": inputs[back].astype(np.float32),  # (N, L, F)
        "actual": targets[ahead],  # (N, H), original units, NaN = not scored
        "naive": np.repeat(values[origins - 1][:, None], horizon, axis=1),
        "snaive": values[seasonal],
    }
