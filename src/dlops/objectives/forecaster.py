"""Forecasters (mlp, rnn, transformer on a series task): the kind evaluates them on its windows
(Kind.evaluate_forecaster); register logs a pyfunc that forecasts from a frame of history, with the
conformal interval widths fitted at evaluation, and re-scores the champion on today's test windows.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.objectives.base import Served

if TYPE_CHECKING:
    from dlops.kinds.base import Kind
    from dlops.params import ModelEntry, Paths, TaskConfig


def evaluate(
    model: Any, p: Paths, kind: Kind, entry: ModelEntry, history: dict[str, Any], out: Path
) -> dict[str, Any]:
    return kind.evaluate_forecaster(model, p, entry, history, out)


def serving(
    p: Paths, kind: Kind, entry: ModelEntry, task_cfg: TaskConfig, pair: str, scores: dict[str, Any]
) -> Served:
    """History in, the next `horizon` steps per series with lower and upper bounds out."""
    inputs = kind.serving_inputs(p, entry, task_cfg, pair)
    intervals = p.state / "serving" / pair / "intervals.json"  # copied into the logged model
    intervals.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(p.eval_dir(pair) / "intervals.json", intervals)
    artifacts = {"checkpoint": p.checkpoint(pair), **inputs.artifacts, "intervals": intervals}

    def score_champion(model_uri: str) -> float:
        """The champion's forecast skill on today's test windows, with its own series scaling."""
        import mlflow

        from dlops.kinds.timeseries.forecast import rescore_skill
        from dlops.kinds.timeseries.preprocess import read_windows

        served = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
        test = read_windows(kind.split_file(p, entry.task, "test"))
        return rescore_skill(served.model, served.transform, test)

    return Served(inputs.pyfunc, artifacts, inputs.example, score_champion, None, inputs.tabular_signature)
