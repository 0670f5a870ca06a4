"""Figures of a forecaster's evaluation and the rows of the forecast file `dvc plots` renders; no torch.

Figures are drawn with `dlops.evaluation.plots.png_figure` (a private Agg canvas, matplotlib's default
style, 100 dpi, no "Software" tag), so the same input gives the same bytes. Every function also draws
a figure from empty input, one that says "no data", because DVC fails a stage whose output is missing.

A forecast window, as the functions here read it, is a dict with `series` (str), `timestamps` (H,)
(datetime64, pandas Timestamps or step numbers), `actual` (H,) (NaN where missing), `forecast` (H,)
and optionally `lower`, `upper` (H,), the prediction interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlops.evaluation.plots import png_figure
from dlops.evaluation.report import clean

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_SERIES = 4  # subplots of plot_forecasts


def _no_data(ax: Axes, title: str) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize="large", transform=ax.transAxes)
    ax.set(title=title, xticks=[], yticks=[])


def _floats(values: Any) -> np.ndarray:
    """A sequence that may hold None as a float64 array with NaN in their place."""
    return np.array([np.nan if v is None else v for v in np.asarray(values, dtype=object)], dtype=np.float64)


def _timestamp_text(value: Any) -> str:
    """ISO text of a datetime64 / pandas or datetime timestamp; str() of anything else (a step number)."""
    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value))
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value.item() if hasattr(value, "item") else value)


def plot_forecasts(
    path: Path | str, history: dict[str, tuple[Any, Any]], windows: list[dict[str, Any]]
) -> Path:
    """PNG of forecast vs actual for the first `MAX_SERIES` series (in order of first appearance in
    `windows`), one subplot each: the series' history (`history[series] = (timestamps, values)`, grey),
    and for each of its windows the actual values (black), the forecast (blue) and the interval (band)."""
    path = Path(path)
    names = list(dict.fromkeys(str(w["series"]) for w in windows))[:MAX_SERIES]
    with png_figure(path, (9.0, 2.6 * max(1, len(names)))) as fig:
        axes = fig.subplots(max(1, len(names)), 1, squeeze=False)[:, 0]
        if not names:
            _no_data(axes[0], "forecasts")
        for ax, name in zip(axes, names, strict=False):
            if name in history:
                stamps, values = history[name]
                ax.plot(np.asarray(stamps), _floats(values), color="grey", linewidth=0.8, label="history")
            for i, window in enumerate(w for w in windows if str(w["series"]) == name):
                stamps = np.asarray(window["timestamps"])
                if window.get("lower") is not None and window.get("upper") is not None:
                    lower, upper = _floats(window["lower"]), _floats(window["upper"])
                    band = "interval" if i == 0 else None
                    ax.fill_between(stamps, lower, upper, color="C0", alpha=0.2, label=band)
                ax.plot(stamps, _floats(window["actual"]), "k.-", label="actual" if i == 0 else None)
                ax.plot(stamps, _floats(window["forecast"]), color="C0", label="forecast" if i == 0 else None)
            ax.set(title=name, ylabel="value")
            ax.legend(loc="upper left", fontsize="small")
    return path


def plot_backtest(path: Path | str, rows: list[dict[str, Any]]) -> Path:
    """PNG of the MASE of each backtest fold (bars labelled by cutoff) with their mean (dashed line);
    `rows` as `metrics.backtest` returns them ({fold, cutoff, mase, mae, windows})."""
    path = Path(path)
    with png_figure(path, (6.0, 4.0)) as fig:
        ax = fig.subplots()
        mase = _floats([row["mase"] for row in rows])
        if not rows or np.isnan(mase).all():
            _no_data(ax, "backtest")
            return path
        x = np.arange(len(rows))
        ax.bar(x, mase, color="C0", label="MASE per fold")
        mean = float(np.nanmean(mase))
        ax.axhline(mean, color="C1", linestyle="--", label=f"mean {mean:.3f}")
        ax.axhline(1.0, color="grey", linestyle=":", label="seasonal naive")
        labels = [f"fold {row['fold']}\ncutoff {row['cutoff']}\n(n={row['windows']})" for row in rows]
        ax.set_xticks(x, labels)
        ax.set(ylabel="MASE", title="rolling-origin backtest")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return path


def plot_group_errors(
    path: Path | str, table: list[dict[str, Any]], column: str = "error", label: str = "error"
) -> Path:
    """PNG of each group's `column` (bars), one panel per attribute; `table` as `metrics.group_errors`
    returns it ({attribute, group, error, mae, series, windows}). The mean over groups is dashed."""
    path = Path(path)
    attributes = list(dict.fromkeys(str(row["attribute"]) for row in table))
    with png_figure(path, (7.0, 3.0 * max(1, len(attributes)))) as fig:
        axes = fig.subplots(max(1, len(attributes)), 1, squeeze=False)[:, 0]
        if not attributes:
            _no_data(axes[0], f"{label} by group")
        for ax, attribute in zip(axes, attributes, strict=False):
            rows = [row for row in table if str(row["attribute"]) == attribute]
            mase = _floats([row[column] for row in rows])
            x = np.arange(len(rows))
            ax.bar(x, mase, color="C0")
            if not np.isnan(mase).all():
                ax.axhline(float(np.nanmean(mase)), color="C1", linestyle="--", label="mean over groups")
                ax.legend(loc="upper left", fontsize="small")
            ax.set_xticks(x, [f"{row['group']}\n({row['series']} series)" for row in rows])
            ax.set(ylabel=label, title=attribute)
    return path


def forecast_rows(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One JSON-safe row per window and horizon step, for `dvc plots`: {window (index in `windows`),
    series, step (1..H), timestamp (ISO text), actual, forecast, lower, upper} (None: missing)."""
    rows = []
    for index, window in enumerate(windows):
        values = {key: window.get(key) for key in ("actual", "forecast", "lower", "upper")}
        arrays = {key: None if v is None else _floats(v) for key, v in values.items()}
        for h, stamp in enumerate(window["timestamps"]):
            row: dict[str, Any] = {"window": index, "series": str(window["series"]), "step": h + 1}
            row["timestamp"] = _timestamp_text(stamp)
            row.update({key: None if a is None else clean(a[h]) for key, a in arrays.items()})
            rows.append(row)
    return rows
