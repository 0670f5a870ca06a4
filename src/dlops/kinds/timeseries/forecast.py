"""Forecasts from a frame of history: what the registered forecaster serves, and how a champion is
re-scored on today's test windows with its own scaling.

A caller sends rows (`series`, `timestamp`, `value`, the covariates); each series' last `lookback` steps
on the regular grid are its input. Out come `horizon` rows per series: `series`, `step`, `timestamp`,
`forecast`, `lower`, `upper` (the conformal interval of the level the model was evaluated at).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from dlops.errors import BadInput
from dlops.kinds.timeseries import windows as win


@torch.no_grad()
def predict_scaled(model: Any, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The model's scaled forecasts (N, H) as float64, in eval mode on its device."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(device))[0].double().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


class HistoryError(BadInput, ValueError):
    """A history frame cannot be forecast from; the message names the column or series."""


def forecast_frame(
    model: Any, transform: dict[str, Any], intervals: dict[str, Any], history: pd.DataFrame
) -> pd.DataFrame:
    """The next `horizon` steps of every series in `history`, with lower and upper bounds."""
    lookback, horizon = int(transform["lookback"]), int(transform["horizon"])
    frame = _checked(history, transform)
    inputs, names, locs, scales, lasts = [], [], [], [], []
    for name, grid in _grids(frame, transform):
        if len(grid.values) < lookback:
            raise HistoryError(
                f"series {name!r}: {len(grid.values)} steps of history, the model reads {lookback}"
            )
        loc, scale = _scaling(transform, name, grid.values)
        inputs.append(_window(grid, loc, scale, transform)[-lookback:])
        names.append(name)
        locs.append(loc)
        scales.append(scale)
        lasts.append(grid.timestamps[-1])
    if not inputs:
        return pd.DataFrame(columns=["series", "step", "timestamp", "forecast", "lower", "upper"])
    scaled = predict_scaled(model, np.stack(inputs).astype(np.float32))  # (S, H)
    loc_col, scale_col = np.array(locs)[:, None], np.array(scales)[:, None]
    point = scaled * scale_col + loc_col
    q = np.asarray(intervals["quantiles"], dtype=np.float64)[None, :]
    offset = pd.tseries.frequencies.to_offset(transform["frequency"])
    rows = []
    for i, name in enumerate(names):
        for h in range(horizon):
            rows.append(
                {
                    "series": name,
                    "step": h + 1,
                    "timestamp": lasts[i] + (h + 1) * offset,
                    "forecast": float(point[i, h]),
                    "lower": float(point[i, h] - q[0, h] * scales[i]),
                    "upper": float(point[i, h] + q[0, h] * scales[i]),
                }
            )
    return pd.DataFrame(rows)


def _checked(history: pd.DataFrame, transform: dict[str, Any]) -> pd.DataFrame:
    needed = ["series", "timestamp", "value", *transform["covariates"]]
    missing = [c for c in needed if c not in history.columns]
    if missing:
        raise HistoryError(f"history lacks columns {missing}; it needs {needed}")
    frame = history[[*needed, *[a for a in transform["attributes"] if a in history.columns]]].copy()
    frame["series"] = frame["series"].astype(str)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], errors="coerce")
    if frame["timestamp"].isna().any():
        bad = frame.loc[frame["timestamp"].isna(), "series"].iloc[0]
        raise HistoryError(f"series {bad!r}: a timestamp does not parse")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    for attr in transform["attributes"]:
        if attr not in frame.columns:
            frame[attr] = ""
    return frame


def _grids(frame: pd.DataFrame, transform: dict[str, Any]) -> list[tuple[str, win.SeriesGrid]]:
    grids = win.regular_grids(frame, transform["frequency"], transform["covariates"], transform["attributes"])
    return [(grid.name, grid) for grid in grids]


def _scaling(transform: dict[str, Any], name: str, values: np.ndarray) -> tuple[float, float]:
    """The series' training scaling; a series the model has not seen is scaled by its own history."""
    known = transform["series"].get(name)
    if known is not None:
        return float(known["loc"]), float(known["scale"])
    return win.scaler(values, transform["scaling"])


def _window(grid: win.SeriesGrid, loc: float, scale: float, transform: dict[str, Any]) -> np.ndarray:
    """Model inputs (n, F) of a series on its grid, as preprocess builds them."""
    observed = np.isfinite(grid.values)
    parts = [((win.filled(grid.values) - loc) / scale)[:, None]]
    if grid.covariates.shape[1]:
        parts.append(win.scaled_covariates(grid.covariates, transform))
    if transform["missing"] == "mask":
        parts.append(observed[:, None].astype(np.float64))
    return np.concatenate(parts, axis=1)


def rescore_skill(model: Any, transform: dict[str, Any], test: dict[str, Any]) -> float:
    """Forecast skill (1 - MASE) of a model with its own scaling (`transform`) on today's test windows
    (scaled with today's): the values are unscaled with today's and rescaled with the model's."""
    from dlops.kinds.timeseries import metrics

    stats = transform["series"]
    pairs = list(zip(test["series"], test["loc"], test["scale"], strict=True))
    own_loc = np.array([float(stats.get(s, {}).get("loc", loc)) for s, loc, _ in pairs])
    own_scale = np.array([float(stats.get(s, {}).get("scale", scale)) for s, _, scale in pairs])
    x = test["x"].copy()
    values = x[..., 0] * test["scale"][:, None] + test["loc"][:, None]
    x[..., 0] = (values - own_loc[:, None]) / own_scale[:, None]
    forecast = predict_scaled(model, x.astype(np.float32)) * own_scale[:, None] + own_loc[:, None]
    found = metrics.forecast_metrics(test["actual"], forecast, test["mase_scale"])
    return float(metrics.skill(found["mase"]))
