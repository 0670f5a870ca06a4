"""Bootstrap confidence intervals for evaluation metrics and paired champion/challenger tests.

Method: the nonparametric bootstrap (Efron 1979) resamples the N evaluation rows with replacement B
times and recomputes the metric on every resample; the percentile interval [q(α/2), q(1 − α/2)] of the
B replicates, α = 1 − confidence, is the reported confidence interval. Every function draws its
resamples from `numpy.random.default_rng(seed)`, so a seed gives byte-identical intervals.

Vectorised over replicates: `bootstrap_indices` draws one (B, N) index matrix. Each metric here is a
function of a few counts per category — (true class, correct?) for balanced accuracy, (group, true
class, predicted class) for the fairness gaps, (distinct score, label) for ROC AUC — so every row gets
an integer category code and a single `np.bincount` over `codes[indices] + replicate * n_codes` yields
the (B, n_codes) count table of all replicates at once; the metric follows by array arithmetic on that
table, with no Python loop over replicates (large inputs are processed in blocks of replicates to bound
memory). ROC AUC is the Mann–Whitney statistic: with the distinct scores sorted, each positive beats
the negatives at lower scores and a tie counts one half (average ranks) — a cumulative sum over the
table. Running the same code on the identity "resample" (`identity_indices`) gives the point estimate.

A replicate on which a metric is undefined (ROC AUC on a resample holding one class; a fairness gap with
fewer than two groups left to compare) is NaN and skipped; an interval without any defined replicate,
or whose point estimate is undefined, is None.

Champion/challenger: `paired_bootstrap` resamples the *same* rows for both models and takes the
percentile interval of the per-replicate difference (candidate − champion), so the difficulty of the
drawn rows, shared by both models, cancels out. `mcnemar` is the exact test on the discordant rows
(b: candidate right and champion wrong, c: the reverse; under H0 b ~ Binomial(b + c, 1/2)). `verdict`
reads either result as "better", "worse" or "indistinguishable".

Fairness gaps follow `dlops.evaluation.fairness`: the measurable groups (count >= min_group_size) are
decided once on the full sample; within a replicate a measurable group that drew no rows (for equalized
odds: that lacks one of the two true outcomes of the class) is left out of that replicate only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

from dlops.evaluation.fairness import attribute_labels
from dlops.evaluation.metrics import check_predictions
from dlops.evaluation.report import clean, key_part

log = logging.getLogger(__name__)

LABEL_METRICS = ("accuracy", "balanced_accuracy")  # compare hard labels
SCORE_METRICS = ("roc_auc", "anomaly_roc_auc")  # compare scores of the positive class
FAIRNESS_GAPS = ("demographic_parity_difference", "equalized_odds_difference")
BLOCK_ELEMENTS = 2**22  # at most this many (replicate x row) or (replicate x code) cells held at once


# ------------------------------------------------------------------------------------------ resampling
def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) row indices, each row one resample of range(n) drawn uniformly with replacement."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"need n >= 1 rows and n_boot >= 1 replicates; got n={n}, n_boot={n_boot}")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=np.int64)


def identity_indices(n: int) -> np.ndarray:
    """The (1, n) resample that is the sample itself: replicate code run on it gives the point estimate."""
    return np.arange(n, dtype=np.int64)[None, :]


def replicate_counts(indices: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    """(B, n_codes) table: how often each code in [0, n_codes) occurs among the rows of each replicate."""
    n_boot = indices.shape[0]
    offsets = np.arange(n_boot, dtype=np.int64)[:, None] * n_codes
    flat = (codes[indices] + offsets).ravel()
    return np.bincount(flat, minlength=n_boot * n_codes).reshape(n_boot, n_codes)


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """Percentile interval of the defined (finite) replicates, rounded; (None, None) when there are none."""
    _check_confidence(confidence)
    defined = np.asarray(replicates, dtype=np.float64)
    defined = defined[np.isfinite(defined)]
    if defined.size == 0:
        return None, None
    alpha = 1.0 - confidence
    low, high = np.percentile(defined, [100.0 * alpha / 2, 100.0 * (1.0 - alpha / 2)])
    return clean(low), clean(high)


def _in_blocks(indices: np.ndarray, n_codes: int, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`compute` over blocks of replicates (rows of `indices`), concatenated, so memory stays bounded."""
    rows = max(1, BLOCK_ELEMENTS // max(indices.shape[1], n_codes))
    return np.concatenate([compute(indices[start : start + rows]) for start in range(0, len(indices), rows)])


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(np.shape(numerator), np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


# --------------------------------------------------------------------------------- metric replicates
def accuracy_replicates(indices: np.ndarray, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(B,) share of correct predictions in each resample."""
    correct = (y == pred).astype(np.float64)
    return _in_blocks(indices, 1, lambda block: correct[block].mean(axis=1))


def balanced_accuracy_replicates(indices: np.ndarray, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(B,) mean per-class recall over the classes present in each resample's y (sklearn's definition)."""
    n_classes = int(max(y.max(), pred.max())) + 1
    codes = y * 2 + (y == pred)

    def compute(block: np.ndarray) -> np.ndarray:
        counts = replicate_counts(block, codes, 2 * n_classes).reshape(len(block), n_classes, 2)
        support = counts.sum(axis=2)
        present = support > 0
        recall = np.divide(counts[..., 1], support, out=np.zeros(support.shape), where=present)
        return recall.sum(axis=1) / present.sum(axis=1)

    return _in_blocks(indices, 2 * n_classes, compute)


def roc_auc_replicates(indices: np.ndarray, y01: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(B,) Mann–Whitney ROC AUC of each resample (ties count 1/2); NaN where a resample holds one class."""
    distinct, score_rank = np.unique(scores, return_inverse=True)
    n_codes = 2 * distinct.size
    codes = score_rank.ravel() * 2 + y01

    def compute(block: np.ndarray) -> np.ndarray:
        counts = replicate_counts(block, codes, n_codes).reshape(len(block), distinct.size, 2)
        negatives, positives = counts[..., 0], counts[..., 1]
        negatives_below = np.cumsum(negatives, axis=1) - negatives
        wins = (positives * (negatives_below + 0.5 * negatives)).sum(axis=1)
        return _ratio(wins, positives.sum(axis=1) * negatives.sum(axis=1))

    return _in_blocks(indices, n_codes, compute)


def metric_replicates(
    metric: str, y_true: np.ndarray, prediction: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    """(B,) values of `metric` on each resample: hard labels for accuracy/balanced_accuracy, positive-class
    scores (with 0/1 labels) for roc_auc/anomaly_roc_auc."""
    if metric == "accuracy":
        return accuracy_replicates(indices, y_true, prediction)
    if metric == "balanced_accuracy":
        return balanced_accuracy_replicates(indices, y_true, prediction)
    if metric in SCORE_METRICS:
        return roc_auc_replicates(indices, y_true, prediction)
    raise ValueError(f"unknown metric {metric!r}; expected one of {LABEL_METRICS + SCORE_METRICS}")


# ------------------------------------------------------------------------------------ metric intervals
def metric_intervals(
    y_true: np.ndarray,
    proba: np.ndarray,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    prefix: str = "test",
    y_pred: np.ndarray | None = None,
) -> dict[str, float | None]:
    """`<prefix>/{accuracy, balanced_accuracy}/{ci_low, ci_high}` of argmax predictions (or of `y_pred`,
    a post-processor's decisions), plus `roc_auc` of proba[:, 1] when binary (None when y_true holds
    one class only)."""
    y, p = check_predictions(y_true, proba)
    indices = bootstrap_indices(y.size, n_boot, seed)
    pred = p.argmax(axis=1) if y_pred is None else np.asarray(y_pred).astype(np.int64).ravel()
    replicates = {
        "accuracy": accuracy_replicates(indices, y, pred),
        "balanced_accuracy": balanced_accuracy_replicates(indices, y, pred),
    }
    if p.shape[1] == 2:
        replicates["roc_auc"] = _auc_or_nan(indices, y, p[:, 1], prefix, "roc_auc")
    return _interval_keys(prefix, replicates, confidence)


def score_intervals(
    y_true01: np.ndarray,
    scores: np.ndarray,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    prefix: str = "test",
    name: str = "roc_auc",
) -> dict[str, float | None]:
    """`<prefix>/<name>/{ci_low, ci_high}`: ROC AUC interval of continuous scores against 0/1 labels
    (e.g. name="anomaly_roc_auc" for anomaly scores); None when y_true01 holds one class only."""
    y, s = _binary_and_scores(y_true01, scores)
    indices = bootstrap_indices(y.size, n_boot, seed)
    return _interval_keys(prefix, {name: _auc_or_nan(indices, y, s, prefix, name)}, confidence)


def _auc_or_nan(
    indices: np.ndarray, y01: np.ndarray, scores: np.ndarray, prefix: str, name: str
) -> np.ndarray:
    if 0 < y01.sum() < y01.size:
        return roc_auc_replicates(indices, y01, scores)
    log.warning("%s/%s interval is None: y_true holds one class only", prefix, name)
    return np.full(len(indices), np.nan)


def _interval_keys(
    prefix: str, replicates: dict[str, np.ndarray], confidence: float
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, values in replicates.items():
        key = f"{prefix}/{name}" if prefix else name
        out[f"{key}/ci_low"], out[f"{key}/ci_high"] = percentile_interval(values, confidence)
    return out


def _binary_and_scores(y_true01: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true01).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size == 0 or y.shape != s.shape:
        raise ValueError(f"labels and scores must be non-empty and equally long; got {y.shape}, {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("scores hold NaN or infinite values")
    return y.astype(np.int64), s


# -------------------------------------------------------------------------------------- fairness gaps
def fairness_gap_replicates(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: dict[str, np.ndarray],
    num_classes: int,
    indices: np.ndarray,
    min_group_size: int = 30,
) -> dict[str, np.ndarray]:
    """(B,) demographic parity and equalized odds differences per resample, keyed like fairness_report:
    `fairness/<attr>/<gap>` per attribute and `fairness/max/<gap>` (the per-replicate max over attributes).
    NaN where a replicate has fewer than two groups to compare."""
    y, yp = _labels(y_true, y_pred, num_classes)
    out: dict[str, np.ndarray] = {}
    for attr, values in groups.items():
        name, g = attribute_labels(attr, values, y.size)
        gaps = _attribute_gaps(indices, y, yp, g, num_classes, min_group_size)
        for column, gap in enumerate(FAIRNESS_GAPS):
            out[f"fairness/{name}/{gap}"] = gaps[:, column]
    for gap in FAIRNESS_GAPS:
        per_attribute = [out[f"fairness/{key_part(attr)}/{gap}"] for attr in groups]
        out[f"fairness/max/{gap}"] = (
            np.fmax.reduce(np.stack(per_attribute, axis=1), axis=1)
            if per_attribute
            else np.full(len(indices), np.nan)
        )
    return out


def gap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: dict[str, np.ndarray],
    num_classes: int,
    min_group_size: int = 30,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float | None]:
    """`fairness/<attr|max>/<gap>/{ci_low, ci_high}` for the demographic parity and equalized odds
    differences; None where the point gap is None (fewer than two measurable groups)."""
    n = np.asarray(y_true).size
    point = fairness_gap_replicates(y_true, y_pred, groups, num_classes, identity_indices(n), min_group_size)
    replicates = fairness_gap_replicates(
        y_true, y_pred, groups, num_classes, bootstrap_indices(n, n_boot, seed), min_group_size
    )
    out: dict[str, float | None] = {}
    for key, values in replicates.items():
        defined = bool(np.isfinite(point[key][0]))
        low, high = percentile_interval(values, confidence) if defined else (None, None)
        out[f"{key}/ci_low"], out[f"{key}/ci_high"] = low, high
    return out


def _labels(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int64).ravel()
    yp = np.asarray(y_pred).astype(np.int64).ravel()
    if y.shape != yp.shape or y.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and equally long; got {y.shape}, {yp.shape}")
    if num_classes < 2 or min(y.min(), yp.min()) < 0 or max(y.max(), yp.max()) >= num_classes:
        raise ValueError(f"labels must be integers in [0, {num_classes}) with num_classes >= 2")
    return y, yp


def _attribute_gaps(
    indices: np.ndarray, y: np.ndarray, yp: np.ndarray, g: np.ndarray, k: int, min_group_size: int
) -> np.ndarray:
    """(B, 2) DP and EO differences of one attribute; rows of unmeasurable groups go to a discarded slot."""
    names, group_of_row, sizes = np.unique(g, return_inverse=True, return_counts=True)
    measurable = sizes >= min_group_size
    slot = np.cumsum(measurable) - 1  # index among the measurable groups
    n_groups = int(measurable.sum())
    group_code = np.where(measurable[group_of_row], slot[group_of_row], n_groups)
    codes = (group_code * k + y) * k + yp
    n_codes = (n_groups + 1) * k * k

    def compute(block: np.ndarray) -> np.ndarray:
        counts = replicate_counts(block, codes, n_codes).reshape(len(block), n_groups + 1, k, k)
        return _gaps_from_confusions(counts[:, :n_groups])

    return _in_blocks(indices, n_codes, compute)


def _gaps_from_confusions(counts: np.ndarray) -> np.ndarray:
    """(B, 2) worst-class DP and EO differences from (B, groups, true class, predicted class) counts.

    Binary: class 1 only (as fairness_report); K > 2: each class one-vs-rest, max over classes."""
    k = counts.shape[-1]
    rows = counts.sum(axis=(2, 3))
    parity, odds = [], []
    for c in [1] if k == 2 else range(k):
        selected = counts[:, :, :, c].sum(axis=2)
        positives = counts[:, :, c, :].sum(axis=2)
        negatives = rows - positives
        true_positives = counts[:, :, c, c]
        both_outcomes = (positives > 0) & (negatives > 0)
        tpr = _ratio(true_positives, np.where(both_outcomes, positives, 0))
        fpr = _ratio(selected - true_positives, np.where(both_outcomes, negatives, 0))
        parity.append(_spread(_ratio(selected, rows)))
        odds.append(np.fmax(_spread(tpr), _spread(fpr)))
    return np.stack(
        [np.fmax.reduce(np.stack(parity, axis=1), axis=1), np.fmax.reduce(np.stack(odds, axis=1), axis=1)],
        axis=1,
    )


def _spread(rates: np.ndarray) -> np.ndarray:
    """(B,) max − min over the defined (non-NaN) group rates; NaN where fewer than two are defined."""
    defined = np.isfinite(rates).sum(axis=1)
    spread = np.fmax.reduce(rates, axis=1) - np.fmin.reduce(rates, axis=1)
    return np.where(defined >= 2, spread, np.nan)


# --------------------------------------------------------------------------------- champion/challenger
def paired_bootstrap(
    y_true: np.ndarray,
    pred_candidate: np.ndarray,
    pred_champion: np.ndarray,
    metric: str,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Candidate − champion difference of `metric` on the full sample, with its percentile interval over
    resamples drawing the same rows for both models. accuracy/balanced_accuracy take hard labels;
    roc_auc/anomaly_roc_auc take positive-class scores and 0/1 labels."""
    _check_confidence(confidence)
    y, candidate, champion = _paired_inputs(y_true, pred_candidate, pred_champion, metric)
    identity = identity_indices(y.size)
    candidate_point = metric_replicates(metric, y, candidate, identity)[0]
    champion_point = metric_replicates(metric, y, champion, identity)[0]
    indices = bootstrap_indices(y.size, n_boot, seed)
    differences = metric_replicates(metric, y, candidate, indices) - metric_replicates(
        metric, y, champion, indices
    )
    low, high = percentile_interval(differences, confidence)
    return {
        "metric": metric,
        "candidate": clean(candidate_point),
        "champion": clean(champion_point),
        "difference": clean(candidate_point - champion_point),
        "ci_low": low,
        "ci_high": high,
        "confidence": confidence,
        "n_boot": n_boot,
        "method": "paired_bootstrap",
    }


def mcnemar(y_true: np.ndarray, pred_candidate: np.ndarray, pred_champion: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of hard predictions: b = candidate right & champion wrong, c = the reverse,
    two-sided binomial p-value of b given b + c (1.0 when no row is discordant). The p-value is kept
    unrounded so that tiny p-values stay distinguishable."""
    y, candidate, champion = _paired_inputs(y_true, pred_candidate, pred_champion, "accuracy")
    candidate_right, champion_right = candidate == y, champion == y
    b = int((candidate_right & ~champion_right).sum())
    c = int((~candidate_right & champion_right).sum())
    p_value = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return {
        "metric": "accuracy",
        "candidate": clean(candidate_right.mean()),
        "champion": clean(champion_right.mean()),
        "difference": clean((b - c) / y.size),
        "b": b,
        "c": c,
        "p_value": p_value,
        "method": "mcnemar",
    }


def verdict(test: dict[str, Any], confidence: float = 0.95) -> str:
    """ "better", "worse" or "indistinguishable" for a paired_bootstrap or mcnemar result.

    Bootstrap: better when the whole interval lies above 0, worse when below (the interval was built at
    test["confidence"]; `confidence` is not used). McNemar: significant when p < 1 − confidence, then the
    side with more discordant wins decides."""
    _check_confidence(confidence)
    method = test.get("method")
    if method == "paired_bootstrap":
        low, high = test["ci_low"], test["ci_high"]
        if low is not None and low > 0:
            return "better"
        if high is not None and high < 0:
            return "worse"
        return "indistinguishable"
    if method == "mcnemar":
        if test["p_value"] < 1.0 - confidence and test["b"] != test["c"]:
            return "better" if test["b"] > test["c"] else "worse"
        return "indistinguishable"
    raise ValueError(f"unknown test method {method!r}; expected 'paired_bootstrap' or 'mcnemar'")


def _paired_inputs(
    y_true: np.ndarray, pred_candidate: np.ndarray, pred_champion: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if metric in SCORE_METRICS:
        y, candidate = _binary_and_scores(y_true, pred_candidate)
        _, champion = _binary_and_scores(y_true, pred_champion)
        return y, candidate, champion
    if metric not in LABEL_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {LABEL_METRICS + SCORE_METRICS}")
    arrays = [np.asarray(a).ravel() for a in (y_true, pred_candidate, pred_champion)]
    if arrays[0].size == 0 or any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(
            f"labels and predictions must be non-empty and equally long; got {[a.shape for a in arrays]}"
        )
    for a in arrays:
        if not np.array_equal(a, np.round(a)) or a.min() < 0:
            raise ValueError("labels and predictions must be non-negative integers for " + metric)
    y, candidate, champion = (a.astype(np.int64) for a in arrays)
    return y, candidate, champion
