"""Bias mitigation for binary classifiers: one method inside training, one after it.

- In training, `reweigh_weights`: Kamiran & Calders' reweighing. Each (group, label) cell of the
  training split gets the weight P(group) P(label) / P(group, label), so that in the weighted data the
  label is independent of the group; the loss is weighted per sample with it.
- After training, `fit_thresholds`: fairlearn's `ThresholdOptimizer` on the trained network's score
  for the positive class, fitted on the validation split (never the test split), for demographic
  parity or equalized odds. Its per-group rule ("positive with probability p0 when score > t0, plus
  p1 when ...") is saved as JSON (`FairThresholds`), not pickled, and applied by `apply` both in
  evaluation and in the served model, so what was measured is what serves.

Randomized thresholds need a random draw per row. fairlearn draws from a generator, so a row's decision
would depend on its position in the batch; here the draw is a hash of the row's model input (the exact
bytes of its features or token ids), so the same row gets the same decision in any batch, in evaluation
and in serving alike, and on any machine: the inputs are exact where the network's score is not (two
kinds of CPU round its last digits differently, and a draw keyed by the score was drawn anew).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GROUP_JOIN = "&"  # "Female&Black": the intersection of several attributes as one group label


def joint_groups(groups: dict[str, Any], attributes: list[str]) -> np.ndarray:
    """One label per row for the intersection of `attributes` (e.g. sex x race -> "Female&Black")."""
    missing = [a for a in attributes if a not in groups]
    if missing:
        raise KeyError(f"sensitive attribute(s) {missing} not in the data; present: {sorted(groups)}")
    columns = [np.asarray(groups[a], dtype=object).astype(str) for a in attributes]
    joined = columns[0]
    for column in columns[1:]:
        joined = np.char.add(np.char.add(joined.astype(str), GROUP_JOIN), column)
    return np.asarray(joined, dtype=object)


def reweigh_weights(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Kamiran-Calders weights P(g) P(y) / P(g, y) per row (mean 1 over the rows)."""
    y = np.asarray(y)
    g = np.asarray(groups, dtype=object).astype(str)
    weights = np.ones(len(y), dtype=np.float64)
    for group in np.unique(g):
        in_group = g == group
        for label in np.unique(y):
            cell = in_group & (y == label)
            if cell.any():
                weights[cell] = in_group.mean() * (y == label).mean() / cell.mean()
    return weights / weights.mean()


def _scores_estimator() -> Any:
    """The estimator ThresholdOptimizer post-processes: X is already the positive-class score (N, 1)."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Scores(ClassifierMixin, BaseEstimator):
        def __init__(self) -> None:
            self.classes_ = np.array([0, 1])  # fitted: nothing to learn

        def fit(self, X: Any, y: Any) -> Any:
            return self

        def predict_proba(self, X: Any) -> np.ndarray:
            s = np.asarray(X, dtype=np.float64).reshape(-1)
            return np.stack([1.0 - s, s], axis=1)

    return Scores()


@dataclass
class FairThresholds:
    """Per-group randomized thresholds over the positive-class score, as fitted by ThresholdOptimizer."""

    constraint: str
    objective: str
    attributes: list[str]
    rules: dict[str, dict[str, Any]]  # group -> {p0, op0, t0, p1, op1, t1[, p_ignore, constant]}

    def positive_probability(self, scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """P(predict positive) per row: the mix of the group's two threshold rules."""
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        g = np.asarray(groups, dtype=object).astype(str)
        unknown = sorted(str(v) for v in set(g) - set(self.rules))
        if unknown:
            raise ValueError(
                f"group(s) {unknown} of {GROUP_JOIN.join(self.attributes)} were not seen when the "
                f"fair thresholds were fitted (known: {sorted(self.rules)})"
            )
        out = np.zeros(len(s))
        for group, rule in self.rules.items():
            rows = g == group
            mixed = rule["p0"] * _op(rule["op0"], rule["t0"], s[rows])
            mixed = mixed + rule["p1"] * _op(rule["op1"], rule["t1"], s[rows])
            if "p_ignore" in rule:
                mixed = rule["p_ignore"] * rule["constant"] + (1 - rule["p_ignore"]) * mixed
            out[rows] = mixed
        return out

    def predict(self, scores: np.ndarray, groups: np.ndarray, inputs: Any) -> np.ndarray:
        """0/1 decisions: positive when the row's own draw (a hash of its model input, `inputs` (N, ...))
        is below P(positive)."""
        probability = self.positive_probability(scores, groups)
        draws = row_draws(inputs)
        if len(draws) != len(probability):
            raise ValueError(f"fair thresholds: {len(draws)} input rows for {len(probability)} scores")
        return (draws < probability).astype(np.int64)

    def to_json(self, path: Path) -> None:
        from dlops.files import write_json

        write_json(path, self.__dict__)

    @classmethod
    def from_json(cls, path: Path) -> FairThresholds:
        """From a thresholds file, or from the `thresholds` entry of an evaluation's mitigation.json."""
        data = json.loads(Path(path).read_text())
        return cls(**data.get("thresholds", data))


def _op(operator: str, threshold: Any, s: np.ndarray) -> np.ndarray:
    t = float(threshold)  # "inf" / "-inf" strings round-trip JSON
    return (s > t if operator == ">" else s < t).astype(np.float64)


def row_draws(inputs: Any) -> np.ndarray:
    """A uniform [0, 1) number per row of `inputs` (N, ...): a hash of the row's bytes, as float32 for
    features and int64 for token ids, so it depends on the row alone (not its position, batch or dtype)."""
    if hasattr(inputs, "detach"):  # a torch tensor
        inputs = inputs.detach().cpu().numpy()
    array = np.asarray(inputs)
    exact = array.astype(np.int64 if np.issubdtype(array.dtype, np.integer) else np.float32)
    rows = np.ascontiguousarray(exact.reshape(len(exact), -1))
    digests = [hashlib.sha256(row.tobytes()).digest()[:8] for row in rows]
    return np.array([int.from_bytes(d, "big") / 2**64 for d in digests], dtype=np.float64)


def fit_thresholds(
    scores: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    constraint: str,
    objective: str,
    attributes: list[str],
    tol: float | None = None,
) -> FairThresholds:
    """Fit fairlearn's ThresholdOptimizer (prefit, on scores) and keep its per-group rules."""
    from fairlearn.postprocessing import ThresholdOptimizer

    optimizer = ThresholdOptimizer(
        estimator=_scores_estimator(),
        constraints=constraint,
        objective=objective,
        prefit=True,
        predict_method="predict_proba",
        tol=tol,
    )
    x = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    optimizer.fit(x, np.asarray(y), sensitive_features=np.asarray(groups, dtype=object).astype(str))
    rules = {}
    for group, rule in optimizer.interpolated_thresholder_.interpolation_dict.items():
        entry = {
            "p0": float(rule.p0),
            "op0": rule.operation0.operator,
            "t0": _threshold(rule.operation0.threshold),
            "p1": float(rule.p1),
            "op1": rule.operation1.operator,
            "t1": _threshold(rule.operation1.threshold),
        }
        if "p_ignore" in rule:
            entry.update(p_ignore=float(rule.p_ignore), constant=float(rule.prediction_constant))
        rules[str(group)] = entry
    return FairThresholds(constraint, objective, list(attributes), rules)


def _threshold(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
