"""What `register` logs for a model: the pyfunc kind, its artifacts (checkpoint, transform or tokenizer,
fair thresholds, anomaly threshold), an input example, and how to score the current champion on
today's test rows (its primary metric, and its per-row decisions for the paired test).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlops.evaluation.report import write_json
from dlops.kinds import kind_of
from dlops.params import Paths


@dataclass
class _Served:
    kind: str  # a key of dlops.serving.SERVING_CLASSES
    artifacts: dict[str, Path]
    example: Any  # what a caller sends
    score_champion: Any = None  # model_uri -> primary metric on today's test split
    paired: Any = None  # tracking.PairedRows for the paired test

    @property
    def python_model(self) -> Any:
        """The pyfunc class `register` logs for this kind."""
        from dlops.serving import SERVING_CLASSES

        return SERVING_CLASSES[self.kind]

    @property
    def tabular_signature(self) -> bool:
        """Raw table rows in: the signature reads integer columns as float64 (a later NaN must fit)."""
        return self.kind == "tabular"


def serving_plan(p: Paths, entry: Any, task_cfg: Any, pair: str, scores: dict[str, Any]) -> _Served:
    """What the registered pyfunc serves, its artifacts, an input example, and how to score the current
    champion on today's test rows (paired decisions for classifiers)."""
    import pandas as pd

    from dlops.models.registry import family_objectives

    objectives = family_objectives(entry.family)
    served = kind_of(task_cfg).serving_inputs(p, entry, task_cfg, pair)
    artifacts: dict[str, Path] = {"checkpoint": p.checkpoint(pair)}
    primary = entry.gates.primary_metric
    if "classifier" in objectives:
        artifacts.update(served.artifacts)
        example = served.example
        mitigation = json.loads((p.eval_dir(pair) / "mitigation.json").read_text())
        if mitigation.get("thresholds"):
            artifacts["fair_thresholds"] = p.eval_dir(pair) / "mitigation.json"
            example = served.inputs.head(20)  # the sensitive columns choose each row's thresholds

        def predict(model_uri: str) -> Any:
            return _load_pyfunc(model_uri).predict(served.inputs)

        def score(model_uri: str) -> float:
            return _score_frame(predict(model_uri), served.truth, primary, by_index=served.by_index)

        paired = _paired_rows(p, entry.task, pair, lambda uri: predict(uri)["prediction"])
        return _Served(served.pyfunc, artifacts, example, score, paired)
    if primary.startswith("anomaly"):
        threshold_file = p.state / "serving" / pair / "threshold.json"  # copied into the logged model
        write_json(threshold_file, {"threshold": scores.get("anomaly/threshold")})
        return _Served("anomaly", {**artifacts, "threshold": threshold_file}, served.example)
    return _Served("generator", artifacts, pd.DataFrame({"label": [0, 1]}))


def _paired_rows(p: Paths, task: str, pair: str, predict_names: Any) -> Any:
    """The candidate's test decisions (predictions.csv) and a champion's on the same rows, as indices."""
    import numpy as np
    import pandas as pd

    from dlops.tracking import PairedRows

    table = pd.read_csv(p.eval_dir(pair) / "predictions.csv", dtype=str, keep_default_na=False)
    classes = json.loads(p.transform(task).read_text())["classes"]
    index = {str(c): i for i, c in enumerate(classes)}

    def as_index(names: Any) -> Any:
        return np.array([index.get(str(n), -1) for n in names])

    return PairedRows(
        y_true=as_index(table["actual"]),
        candidate=as_index(table["predicted"]),
        predict=lambda uri: as_index(predict_names(uri)),
    )


def _load_pyfunc(model_uri: str) -> Any:
    """The champion being compared, from the project's registry, after its checkpoint's sha256 check."""
    from dlops.tracking import load_registered

    return load_registered(model_uri)


def _score_frame(out: Any, truth: Any, primary: str, by_index: bool = False) -> float:
    """The primary metric of a pyfunc's output frame against the true classes (names, or indices)."""
    import numpy as np

    from dlops.evaluation.metrics import classification_metrics

    classes = [c[len("proba_") :] for c in out.columns if c.startswith("proba_")]
    index = {name: i for i, name in enumerate(classes)}
    y = np.asarray(truth) if by_index else np.array([index.get(str(v), -1) for v in truth])
    keep = y >= 0
    proba = out[[f"proba_{c}" for c in classes]].to_numpy()[keep]
    decided = np.array([index[str(v)] for v in out["prediction"]])[keep]
    scores = classification_metrics(y[keep], proba, classes, prefix="test", y_pred=decided)
    return float(scores[f"test/{primary}"])
