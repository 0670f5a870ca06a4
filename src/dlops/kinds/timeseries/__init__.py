"""Time-series tasks: forecast the next `horizon` values of one or many series (demand, load, prices).

Modules: synthetic and sources (ingest: the seeded `synthetic-series` generator, a `series-table`
CSV/Parquet), suite (validate: sorted and unique timestamps, gaps, missing values, bounds, length),
windows (preprocess: regular grid, time split, train-only scaling, lookback -> horizon windows),
augment (jitter and scaling of training windows), metrics and plots (MAE, RMSE, sMAPE, MASE,
backtests, conformal intervals, errors by series group), evaluate (the forecaster's evaluation),
forecast (forecasts from a frame of history: the served model), continuity and drift (new batches).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from dlops.kinds.base import Kind, ServingInputs

log = logging.getLogger(__name__)


class Timeseries(Kind):
    name = "timeseries"

    def load(self, task_cfg: Any, root: Path) -> Any:
        from dlops.kinds.timeseries.sources import load_series

        return load_series(task_cfg, root)

    def tag_batch_rows(self, frame: Any, batch_id: str) -> Any:
        return frame.assign(source=[f"{batch_id}:{s}" for s in frame["source"].astype(str)])

    def draft_suite(self, task: str, task_cfg: Any, frame: Any) -> dict[str, Any]:
        from dlops.kinds.timeseries.suite import draft_series_suite

        return draft_series_suite(frame, task_cfg, task)

    def validate(
        self, raw: Any, suite: dict[str, Any], task_cfg: Any, docs_dir: Path | None
    ) -> dict[str, Any]:
        """The suite on the series table; failures name the series and the time (`series@time`)."""
        from dlops.kinds.timeseries.suite import validate_series

        return validate_series(raw, suite, task_cfg, docs_dir)

    def preprocess(
        self, task: str, task_cfg: Any, raw: Any, p: Any, blocks: list[tuple[str, int]]
    ) -> dict[str, int]:
        """Regular grids, a split by time, scaling fitted on each series' training period, windows."""
        from dlops.kinds.timeseries.preprocess import write_windows

        out = p.processed(task)
        if out.exists():
            shutil.rmtree(out)
        sizes = write_windows(task, task_cfg, raw, p)
        log.info("preprocess %s: %s windows", task, sizes)
        return sizes

    def split_file(self, p: Any, task: str, split: str) -> Path:
        return Path(p.image_split(task, split))

    def load_split(self, p: Any, task: str, split: str) -> tuple[Any, Any, dict[str, Any]]:
        """(x float32 (N, L, F), y float32 (N, H) scaled targets, NaN = not scored; {attribute: groups})."""
        from dlops.kinds.timeseries.preprocess import read_windows

        data = read_windows(self.split_file(p, task, split))
        return data["x"], data["y"], data["groups"]

    def classes_and_shape(self, transform: dict[str, Any]) -> tuple[list[str], tuple[int, ...]]:
        return [], tuple(transform["input_shape"])

    def model_config(self, transform: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
        return {**model, "horizon": int(transform["horizon"])}

    def batch_augment(self, task_cfg: Any, num_classes: int) -> Any:
        from dlops.kinds.timeseries.augment import make_series_augment

        return make_series_augment(task_cfg.augment)

    def evaluate_forecaster(
        self, model: Any, p: Any, entry: Any, history: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        from dlops.kinds.timeseries.evaluate import evaluate_forecaster

        return evaluate_forecaster(model, p, entry, history, out)

    def serving_inputs(self, p: Any, entry: Any, task_cfg: Any, pair: str) -> ServingInputs:
        """History frames as a caller sends them: every series up to the test period."""
        from dlops.kinds.timeseries.preprocess import history_frame

        history = history_frame(p, entry.task, before="test")
        first_two = history[history["series"].isin(sorted(history["series"].unique())[:2])]
        lookback = task_cfg.preprocess.lookback
        example = first_two.groupby("series", sort=True).tail(lookback).reset_index(drop=True)
        return ServingInputs(
            inputs=history,
            truth=None,
            by_index=False,
            example=example,
            pyfunc="forecaster",
            artifacts={"transform": p.transform(entry.task)},
            tabular_signature=True,
        )

    def batch_problems(self, task_cfg: Any, accepted: Any, batch: Any) -> list[str]:
        from dlops.kinds.timeseries.continuity import continuity_problems

        return continuity_problems(task_cfg, accepted(), batch)

    def drift(
        self, task_cfg: Any, reference: Any, current: Any, p: Any, task: str, threshold: float
    ) -> dict[str, Any]:
        from dlops.kinds.timeseries.drift import series_drift

        return series_drift(task_cfg, reference, current, threshold)

    def drift_summary(self, report: dict[str, Any]) -> str:
        from dlops.kinds.timeseries.drift import summary

        return summary(report)

    def batch_spec_for_path(self, path: str) -> dict[str, Any]:
        return {"source": "series-table", "path": path}


KIND = Timeseries()
