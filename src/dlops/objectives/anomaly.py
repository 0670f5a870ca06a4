"""Anomaly detectors (autoencoder, VAE): trained on `normal_classes` only; every other class is an
anomaly. ROC-AUC and average precision on test, a threshold chosen on validation, a reconstruction
grid, and the train-vs-validation reconstruction gap as the overfitting measure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dlops.evaluation import images
from dlops.objectives.base import Served

if TYPE_CHECKING:
    from dlops.kinds.base import Kind
    from dlops.params import ModelEntry, Paths, TaskConfig

Split = tuple[np.ndarray, np.ndarray, dict[str, Any]]  # (x (N, C, H, W) in [0, 1], y (N,), groups)


@torch.no_grad()
def anomaly_scores(model: Any, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Per-image anomaly scores (N,) of a model with `anomaly_score`, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model.anomaly_score(torch.from_numpy(np.array(x[i : i + batch_size])).to(device)).double().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0)


def evaluate(
    model: Any, entry: ModelEntry, splits: dict[str, Split], figures: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, list[Any]]]:
    normal = entry.model.get("normal_classes")
    if normal is None:
        raise ValueError(
            f"models: family {entry.family!r} on task {entry.task!r} needs model.normal_classes to be "
            "evaluated as an anomaly detector (the other classes are the anomalies)"
        )
    scores = {name: anomaly_scores(model, x) for name, (x, _, _) in splits.items()}
    is_anomaly = {name: ~np.isin(y, normal) for name, (_, y, _) in splits.items()}
    metrics = images.anomaly_report(scores["val"], is_anomaly["val"], scores["test"], is_anomaly["test"])
    train_error = float(scores["train"][~is_anomaly["train"]].mean())
    val_error = float(scores["val"][~is_anomaly["val"]].mean())
    metrics.update(images.reconstruction_gap(train_error, val_error))
    if entry.evaluate.bootstrap and is_anomaly["test"].any() and not is_anomaly["test"].all():
        from dlops.evaluation.uncertainty import score_intervals

        cfg = entry.evaluate
        metrics.update(
            score_intervals(
                is_anomaly["test"].astype(int), scores["test"], cfg.bootstrap, cfg.confidence,
                entry.train.seed, "test", name="anomaly_roc_auc",
            )
        )  # fmt: skip

    x_test = splits["test"][0]
    pick = np.concatenate([np.flatnonzero(~is_anomaly["test"])[:8], np.flatnonzero(is_anomaly["test"])[:8]])
    with torch.no_grad():
        model.eval()
        recon, _ = model(torch.from_numpy(np.array(x_test[pick])))
    images.save_reconstruction_grid(x_test[pick], recon.float().numpy(), figures / "reconstructions.png")

    roc = _roc_points(is_anomaly["test"], scores["test"])
    threshold = metrics.get("anomaly/threshold")
    flagged = scores["test"] >= threshold if threshold is not None else np.zeros(len(x_test), bool)
    label = np.where(is_anomaly["test"], "anomaly", "normal").tolist()
    predictions = {"actual": label, "predicted": np.where(flagged, "anomaly", "normal").tolist()}
    return metrics, roc, predictions


def _roc_points(is_anomaly: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    from sklearn.metrics import roc_curve

    if is_anomaly.all() or not is_anomaly.any():
        return []
    fpr, tpr, _ = roc_curve(is_anomaly, scores)
    return [{"fpr": round(float(f), 6), "tpr": round(float(t), 6)} for f, t in zip(fpr, tpr, strict=True)]


def serving(
    p: Paths, kind: Kind, entry: ModelEntry, task_cfg: TaskConfig, pair: str, scores: dict[str, Any]
) -> Served:
    """Anomaly scores and flags at the threshold chosen on validation, for inputs as the kind serves them."""
    from dlops.files import write_json

    threshold_file = p.state / "serving" / pair / "threshold.json"  # copied into the logged model
    write_json(threshold_file, {"threshold": scores.get("anomaly/threshold")})
    example = kind.serving_inputs(p, entry, task_cfg, pair).example
    return Served("anomaly", {"checkpoint": p.checkpoint(pair), "threshold": threshold_file}, example)
