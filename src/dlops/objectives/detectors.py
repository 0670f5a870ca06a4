"""The evaluation of families that are not classifiers (autoencoder, VAE, GAN): each objective the
family declares adds its scores (objectives/anomaly.py, objectives/generator.py); this writes what
every evaluate stage writes, with empty tables where a plot does not apply, and the diagnosis.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.evaluation import plots
from dlops.files import write_json
from dlops.objectives import anomaly, generator

if TYPE_CHECKING:
    from dlops.params import ModelEntry

DEFAULT_RECONSTRUCTION_GAP = 0.25  # diagnosis threshold when the gate is not set
DEFAULT_MEMORIZATION_RATIO = 0.8


def evaluate_non_classifier(
    model: Any,
    objectives: frozenset[str],
    entry: ModelEntry,
    splits: dict[str, Any],
    classes: list[str],
    history: dict[str, Any],
    out: Path,
) -> dict[str, Any]:
    figures = out / "figures"
    scores: dict[str, Any] = {}
    roc: list[dict[str, Any]] = []
    predictions: dict[str, list[Any]] = {"actual": [], "predicted": []}
    if "anomaly" in objectives:
        found, roc, predictions = anomaly.evaluate(model, entry, splits, figures)
        scores.update(found)
    if "generator" in objectives:
        generated, generated_predictions = generator.evaluate(model, entry, splits, classes, figures)
        scores.update(generated)
        if "anomaly" not in objectives:
            predictions = generated_predictions
    rows = history.get("epochs") or []
    scores["overfit/best_epoch"] = history.get("best_epoch")
    scores["overfit/epochs_run"] = len(rows)
    scores["overfit/diagnosis"] = _diagnosis(scores, entry.gates)

    write_json(out / "fairness.json", {})
    write_json(out / "mitigation.json", {"reweigh": [], "postprocess": None})
    write_json(out / "interpretation.json", {})
    write_json(out / "confusion.json", {})
    write_json(out / "roc.json", {"roc": roc})
    write_json(out / "calibration.json", {"calibration": []})
    write_json(out / "learning_curve.json", {"history": plots.history_rows(history)})
    _write_predictions(out / "predictions.csv", predictions)
    plots.plot_learning_curves(figures, history)
    return scores


# ------------------------------------------------------------------------------------------------ common
def _diagnosis(scores: dict[str, Any], gates: Any) -> str:
    gap = scores.get("overfit/reconstruction_gap")
    ratio = scores.get("generate/memorization_ratio")
    gap_limit = gates.max_reconstruction_gap
    ratio_limit = gates.min_memorization_ratio
    if gap is not None and gap > (DEFAULT_RECONSTRUCTION_GAP if gap_limit is None else gap_limit):
        return "overfitting"
    if ratio is not None and ratio < (DEFAULT_MEMORIZATION_RATIO if ratio_limit is None else ratio_limit):
        return "memorizing"
    return "ok"


def _write_predictions(path: Path, predictions: dict[str, list[Any]]) -> None:
    import pandas as pd

    pd.DataFrame(predictions, columns=["actual", "predicted"]).to_csv(path, index=False, lineterminator="\n")
