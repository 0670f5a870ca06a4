"""The preprocess stage of a series task: windows of every split in .npz files, the series on their
regular grids (series.parquet: what evaluate plots and serving starts from) and transform.json (what a
forecaster needs to read new history: lookback, horizon, frequency, each series' scaling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlops.data.arrays import GROUP_KEY_PREFIX, write_npz
from dlops.data.inputs import DataSourceError
from dlops.kinds.timeseries import windows as win

SPLITS = ("train", "val", "test")
PER_WINDOW = ("actual", "naive", "snaive", "origin", "loc", "scale", "mase_scale", "level", "origin_time")


def write_windows(task: str, task_cfg: Any, raw: pd.DataFrame, p: Any) -> dict[str, int]:
    """Cut, scale and window every series; write the splits, series.parquet and transform.json."""
    from dlops.files import write_json, write_parquet

    cfg, frequency = task_cfg.preprocess, task_cfg.frequency
    covariates = list(getattr(task_cfg.ingest, "covariates", []))
    attributes = list(task_cfg.columns.sensitive)
    season = task_cfg.season_length()
    parts: dict[str, list[dict[str, np.ndarray]]] = {split: [] for split in SPLITS}
    stats, grid_rows = {}, []
    grids = win.regular_grids(raw, frequency, covariates, attributes)
    cut = [win.Periods.of(len(grid.values), cfg.val_steps, cfg.test_steps, cfg.gap) for grid in grids]
    for grid, periods in zip(grids, cut, strict=True):
        _check_long_enough(task, grid, periods, cfg)
    scaling = {"covariate_scaling": win.covariate_scaling(grids, [c.train_end for c in cut])}
    for grid, periods in zip(grids, cut, strict=True):
        train_values = grid.values[: periods.train_end]
        loc_scale = win.scaler(train_values, cfg.scaling)
        mase_scale = win.seasonal_scale(train_values, season)
        for split, arrays in win.windows_of(
            grid, periods, cfg, season, loc_scale, mase_scale, scaling
        ).items():
            count = len(arrays["origin"])
            arrays["series"] = np.full(count, grid.name)
            arrays["origin_time"] = grid.timestamps[arrays["origin"]].asi8.astype(np.int64)
            for attr in attributes:
                arrays[GROUP_KEY_PREFIX + attr] = np.full(count, grid.attributes[attr])
            parts[split].append(arrays)
        stats[grid.name] = {
            "loc": loc_scale[0],
            "scale": loc_scale[1],
            "mase_scale": mase_scale,
            "test_start": str(grid.timestamps[periods.test_start]),
            "val_start": str(grid.timestamps[periods.val_start]),
            "last": str(grid.timestamps[-1]),
            "attributes": grid.attributes,
        }
        split_of = np.full(periods.n, "train", dtype=object)
        split_of[periods.val_start : periods.val_end] = "val"
        split_of[periods.test_start :] = "test"
        split_of[periods.train_end : periods.val_start] = "gap"
        split_of[periods.val_end : periods.test_start] = "gap"
        grid_rows.append(
            pd.DataFrame(
                {"series": grid.name, "timestamp": grid.timestamps, "value": grid.values, "split": split_of}
                | {c: grid.covariates[:, i] for i, c in enumerate(covariates)}
                | {a: grid.attributes[a] for a in attributes}
            )
        )
    if not stats:
        raise DataSourceError(f"task {task!r}: no series with a parsed timestamp in the raw table")
    sizes = {}
    for split in SPLITS:
        arrays = {key: np.concatenate([part[key] for part in parts[split]]) for key in parts[split][0]}
        arrays["y"] = ((arrays["actual"] - arrays["loc"][:, None]) / arrays["scale"][:, None]).astype(
            np.float32
        )
        write_npz(p.image_split(task, split), arrays)
        sizes[split] = len(arrays["y"])
    write_parquet(pd.concat(grid_rows, ignore_index=True), series_file(p, task))
    features = ["value", *covariates, *(["observed"] if cfg.missing == "mask" else [])]
    transform = {
        "kind": "timeseries",
        "classes": [],
        "input_shape": [cfg.lookback, len(features)],
        "features": features,
        "covariates": covariates,
        "attributes": attributes,
        "lookback": cfg.lookback,
        "horizon": cfg.horizon,
        "frequency": frequency,
        "season": season,
        "missing": cfg.missing,
        "scaling": cfg.scaling,
        "interval": cfg.interval,
        "backtest_folds": cfg.backtest_folds,
        **scaling,
        "series": stats,
    }
    write_json(p.transform(task), transform)
    return sizes


def _check_long_enough(task: str, grid: win.SeriesGrid, periods: win.Periods, cfg: Any) -> None:
    if periods.train_end - cfg.horizon >= cfg.lookback:
        return
    need = cfg.lookback + cfg.horizon + cfg.val_steps + cfg.test_steps + 2 * cfg.gap
    raise DataSourceError(
        f"task {task!r}: series {grid.name!r} has {periods.n} steps; a training window, validation and test "
        f"need at least {need} (tasks.{task}.preprocess: lookback + horizon + val + test + 2 x gap)"
    )


def series_file(p: Any, task: str) -> Path:
    return Path(p.processed(task)) / "series.parquet"


def read_windows(path: Path) -> dict[str, Any]:
    """Every array of one split file: x, y, the per-window arrays and `groups` ({attribute: labels})."""
    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {key: data[key] for key in data.files if not key.startswith(GROUP_KEY_PREFIX)}
        out["groups"] = {
            k[len(GROUP_KEY_PREFIX) :]: data[k] for k in data.files if k.startswith(GROUP_KEY_PREFIX)
        }
    out["x"] = out["x"].astype(np.float32)
    out["y"] = out["y"].astype(np.float32)
    return out


def history_frame(p: Any, task: str, before: str = "test") -> pd.DataFrame:
    """The series as a caller sends history: rows before the `before` period, missing steps left out."""
    grid = pd.read_parquet(series_file(p, task))
    order = {"train": 0, "gap": 1, "val": 1, "test": 2}
    keep = grid["split"].map(order) < order[before]
    frame = grid.loc[keep & grid["value"].notna()].drop(columns=["split"])
    return frame.reset_index(drop=True)
