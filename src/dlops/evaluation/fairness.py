"""Group fairness of hard predictions per sensitive attribute, with fairlearn.

Small groups: a group with fewer than `min_group_size` rows is still reported in the per-group table,
flagged `measurable: False`, but left out of every gap, because a rate over a handful of rows is noise
and one tiny group would otherwise decide the gate. Equalized odds additionally needs a group to hold
both true outcomes (no positives → no TPR); such groups are left out of that gap only.

Multiclass (K > 2): each class c is treated one-vs-rest (predicted c vs not); the reported
demographic_parity_difference and equalized_odds_difference are the largest over classes, and
demographic_parity_ratio the smallest, so the gates see the worst class.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from dlops.evaluation.report import clean, key_part

log = logging.getLogger(__name__)

GAPS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "accuracy_difference",
)
MAX_GAPS = ("demographic_parity_difference", "equalized_odds_difference")  # what the gates read


def fairness_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: dict[str, np.ndarray],
    min_group_size: int = 30,
    *,
    num_classes: int | None = None,
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Flat fairness metrics and the per-group table of each sensitive attribute.

    Flat keys: `fairness/<attr>/{demographic_parity_difference, demographic_parity_ratio,
    equalized_odds_difference, accuracy_difference, groups, groups_measurable}` and
    `fairness/max/{demographic_parity_difference, equalized_odds_difference}` over attributes. A gap is
    None when fewer than two groups are measurable (logged). Table rows: group, count, selection_rate,
    tpr, fpr, accuracy, measurable (multiclass: `selection_rate/<k>`, `tpr/<k>`, `fpr/<k>` per class
    index k). Positive class = 1. `num_classes` defaults to what the labels show (at least 2).
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    yp = np.asarray(y_pred).astype(np.int64).ravel()
    if y.shape != yp.shape or y.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and equally long; got {y.shape}, {yp.shape}")
    k = num_classes or max(2, int(max(y.max(), yp.max())) + 1)

    flat: dict[str, Any] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    worst: dict[str, list[float]] = {metric: [] for metric in MAX_GAPS}
    for attr, values in groups.items():
        name, g = attribute_labels(attr, values, y.size)
        tables[attr] = group_table(y, yp, g, k, min_group_size)
        measurable = [row["group"] for row in tables[attr] if row["measurable"]]
        gaps = _gaps(y, yp, g, k, measurable, attr)
        for metric, value in gaps.items():
            flat[f"fairness/{name}/{metric}"] = clean(value)
            if metric in worst and value is not None:
                worst[metric].append(clean(value))
        flat[f"fairness/{name}/groups"] = len(tables[attr])
        flat[f"fairness/{name}/groups_measurable"] = len(measurable)

    for metric, gaps_seen in worst.items():
        flat[f"fairness/max/{metric}"] = max(gaps_seen) if gaps_seen else None
        if not gaps_seen:
            log.warning("fairness/max/%s is None: no attribute has two measurable groups", metric)
    return flat, tables


def attribute_labels(attr: str, values: Any, n: int) -> tuple[str, np.ndarray]:
    """(metric-key name, group labels as strings) of one sensitive attribute, checked against n rows."""
    g = np.asarray(values, dtype=object).astype(str)
    if g.shape != (n,):
        raise ValueError(f"sensitive attribute {attr!r} has {g.shape[0]} values for {n} rows")
    name = key_part(attr)
    if name == "max":
        raise ValueError("a sensitive attribute may not be called 'max' (reserved for the maximum)")
    return name, g


def group_table(
    y: np.ndarray, yp: np.ndarray, g: np.ndarray, k: int, min_group_size: int
) -> list[dict[str, Any]]:
    """One row per group (sorted by name), every group included whatever its size."""
    base = MetricFrame(
        metrics={"count": count, "accuracy": accuracy_score}, y_true=y, y_pred=yp, sensitive_features=g
    ).by_group
    classes = [1] if k == 2 else list(range(k))
    rates = {c: _rates((y == c).astype(int), (yp == c).astype(int), g) for c in classes}
    rows = []
    for group in base.index:
        n = int(base.loc[group, "count"])
        row: dict[str, Any] = {"group": str(group), "count": n}
        for c, frame in rates.items():
            suffix = "" if k == 2 else f"/{c}"
            for col in ("selection_rate", "tpr", "fpr"):
                row[col + suffix] = clean(frame.loc[group, col])
        row["accuracy"] = clean(base.loc[group, "accuracy"])
        row["measurable"] = n >= min_group_size
        rows.append(row)
    return rows


def _rates(y01: np.ndarray, p01: np.ndarray, g: np.ndarray) -> pd.DataFrame:
    """Per-group selection rate, TPR and FPR of a 0/1 task; NaN where undefined (fairlearn says 0)."""
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "positives": lambda t, p: int(t.sum()),
            "negatives": lambda t, p: int((1 - t).sum()),
        },
        y_true=y01,
        y_pred=p01,
        sensitive_features=g,
    ).by_group.astype(float)
    frame.loc[frame["positives"] == 0, "tpr"] = np.nan
    frame.loc[frame["negatives"] == 0, "fpr"] = np.nan
    return frame


def _gaps(
    y: np.ndarray, yp: np.ndarray, g: np.ndarray, k: int, measurable: list[str], attr: str
) -> dict[str, float | None]:
    """Between-group gaps over the measurable groups only (see the module docstring)."""
    if len(measurable) < 2:
        log.warning("fairness/%s gaps are None: %d measurable group(s), need 2", attr, len(measurable))
        return dict.fromkeys(GAPS)
    keep = np.isin(g, measurable)
    y, yp, g = y[keep], yp[keep], g[keep]
    dp, ratio, eo = [], [], []
    for c in [1] if k == 2 else range(k):
        t, p = (y == c).astype(int), (yp == c).astype(int)
        dp.append(demographic_parity_difference(t, p, sensitive_features=g))
        ratio.append(demographic_parity_ratio(t, p, sensitive_features=g))
        both = [grp for grp in measurable if 0 < t[g == grp].sum() < (g == grp).sum()]
        if len(both) >= 2:
            m = np.isin(g, both)
            eo.append(equalized_odds_difference(t[m], p[m], sensitive_features=g[m]))
    if not eo:
        log.warning("fairness/%s/equalized_odds_difference is None: <2 groups hold both outcomes", attr)
    ratios = [r for r in ratio if np.isfinite(r)]  # 0/0 when no group is ever selected
    accuracy = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=yp, sensitive_features=g)
    return {
        "demographic_parity_difference": max(dp),
        "demographic_parity_ratio": min(ratios) if ratios else None,
        "equalized_odds_difference": max(eo) if eo else None,
        "accuracy_difference": accuracy.difference(),
    }
