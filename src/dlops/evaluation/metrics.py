"""Overall, per-class and calibration metrics from predicted probabilities, as flat JSON-safe dicts.

Every value is a float rounded to 6 decimals, an int, or None where the metric is undefined on this
data (e.g. ROC AUC when a class is absent); each None is logged with its reason, never written as NaN.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from dlops.evaluation.report import clean, unique_key_parts

log = logging.getLogger(__name__)

Metrics = dict[str, Any]  # values: float | int | None


def check_predictions(
    y_true: np.ndarray, proba: np.ndarray, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate (N,) integer labels and (N, K) probabilities; return them as int64 and row-normalised float64.

    Rows must already sum to 1 (within 1e-4, what float32 softmax gives); they are renormalised exactly
    because scikit-learn checks the sum at ~1e-8.
    """
    y = np.asarray(y_true).ravel()
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or p.shape[1] < 2:
        raise ValueError(f"expected y_true (N,) and proba (N, K>=2); got {y.shape} and {p.shape}")
    if num_classes is not None and p.shape[1] != num_classes:
        raise ValueError(f"proba has {p.shape[1]} columns but there are {num_classes} classes")
    if y.size == 0:
        raise ValueError("no rows to evaluate")
    if not np.array_equal(y, np.round(y)) or y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must be integers in [0, {p.shape[1]}); got range [{y.min()}, {y.max()}]")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("proba holds negative, NaN or infinite values")
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, rtol=0.0, atol=1e-4):
        raise ValueError(f"proba rows must sum to 1; found sums in [{sums.min():.6f}, {sums.max():.6f}]")
    return y.astype(np.int64), p / sums[:, None]


# ---------------------------------------------------------------------------------------- calibration
def _bin_stats(y: np.ndarray, p: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    """Top-label confidence binned into `n_bins` equal-width right-closed bins (lo, hi] (Guo et al. 2017)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.searchsorted(edges[1:-1], conf, side="left")  # bin i holds edges[i] < conf <= edges[i+1]
    counts = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    correct_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    return edges, counts, conf_sum, correct_sum


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: sum over bins of (bin size / N) * |accuracy in bin - mean confidence in bin|."""
    y, p = check_predictions(y_true, proba)
    _, _, conf_sum, correct_sum = _bin_stats(y, p, n_bins)
    # (n_b / N) * |correct_b / n_b - conf_b / n_b| = |correct_b - conf_b| / N; empty bins add 0.
    return float(np.abs(correct_sum - conf_sum).sum() / y.size)


def calibration_bins(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> list[dict[str, Any]]:
    """The reliability diagram behind the ECE: one row per non-empty bin (lower, upper, count, confidence,
    accuracy), for plots and `calibration.json`."""
    y, p = check_predictions(y_true, proba)
    edges, counts, conf_sum, correct_sum = _bin_stats(y, p, n_bins)
    return [
        {
            "lower": clean(edges[i]),
            "upper": clean(edges[i + 1]),
            "count": int(counts[i]),
            "confidence": clean(conf_sum[i] / counts[i]),
            "accuracy": clean(correct_sum[i] / counts[i]),
        }
        for i in range(n_bins)
        if counts[i] > 0
    ]


# -------------------------------------------------------------------------------------------- metrics
def classification_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: list[str],
    prefix: str,
    y_pred: np.ndarray | None = None,
) -> Metrics:
    """Flat metrics of one split, keyed `<prefix>/<name>` (e.g. `test/accuracy`).

    Keys: n, accuracy, balanced_accuracy, f1 (binary: of class index 1; multiclass: macro), roc_auc
    (binary: of proba[:, 1]; multiclass: one-vs-rest macro), log_loss, ece (15 bins, top-label), brier
    (binary only), class/<name>/{precision,recall,f1,support}, worst_class_recall. Class names are made
    key-safe (`<=50K` → `le50K`). None where undefined: roc_auc when a class is absent from y_true,
    per-class recall of an absent class, per-class precision of a never-predicted class.
    """
    k = len(class_names)
    y, p = check_predictions(y_true, proba, num_classes=k)
    labels = list(range(k))
    pred = p.argmax(axis=1) if y_pred is None else np.asarray(y_pred).astype(np.int64).ravel()
    binary = k == 2
    present = np.bincount(y, minlength=k) > 0
    # `y_pred`: decisions of a post-processor (fair thresholds); hard-decision metrics use them, the
    # score metrics (roc_auc, log_loss, ece, brier) keep reading `proba`.

    out: dict[str, Any] = {
        "n": int(y.size),
        "accuracy": skm.accuracy_score(y, pred),
        # mean recall over the classes present in y_true (sklearn's definition)
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        # zero_division=0: a model that never predicts the positive class scores 0, not "undefined",
        # so the primary metric is always a number the gates can compare.
        "f1": skm.f1_score(
            y, pred, labels=labels, average="binary" if binary else "macro", pos_label=1, zero_division=0.0
        ),
        "roc_auc": None,
        "log_loss": skm.log_loss(y, p, labels=labels),
        "ece": expected_calibration_error(y, p),
    }
    if present.all():
        if binary:
            out["roc_auc"] = skm.roc_auc_score(y, p[:, 1])
        else:
            out["roc_auc"] = skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels)
    else:
        absent = [class_names[i] for i in np.flatnonzero(~present)]
        log.warning("%s/roc_auc is None: class(es) %s absent from y_true", prefix, absent)
    if binary:
        out["brier"] = skm.brier_score_loss(y, p[:, 1], pos_label=1)

    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=np.nan
    )
    recalls = []
    for i, name in enumerate(unique_key_parts(class_names)):
        out[f"class/{name}/precision"] = precision[i]
        out[f"class/{name}/recall"] = recall[i]
        out[f"class/{name}/f1"] = f1[i]
        out[f"class/{name}/support"] = int(support[i])
        if present[i]:
            recalls.append(recall[i])
    never_predicted = [class_names[i] for i in labels if not (pred == i).any()]
    if never_predicted:
        log.warning("%s: precision is None for never-predicted class(es) %s", prefix, never_predicted)
    out["worst_class_recall"] = min(recalls)
    return {f"{prefix}/{key}" if prefix else key: clean(value) for key, value in out.items()}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Counts with rows = actual class and columns = predicted class, both in `class_names` order."""
    matrix = skm.confusion_matrix(
        np.asarray(y_true).ravel(), np.asarray(y_pred).ravel(), labels=list(range(len(class_names)))
    )
    return {"labels": list(class_names), "matrix": matrix.tolist()}


def predictions_table(
    y_true: np.ndarray, proba: np.ndarray, class_names: list[str], y_pred: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per example: actual and predicted class names and the top class's probability."""
    y, p = check_predictions(y_true, proba, num_classes=len(class_names))
    names = np.asarray(class_names, dtype=object)
    pred = p.argmax(axis=1) if y_pred is None else np.asarray(y_pred).astype(np.int64).ravel()
    return pd.DataFrame({"actual": names[y], "predicted": names[pred], "score": np.round(p.max(axis=1), 6)})
