"""The membership-inference audit: how well an attacker who sees a model's probabilities tells the rows
it was trained on (members) from rows it never saw (non-members, the held-out test split).

Two shadow-free attacks score each row, higher meaning "more likely a member":

- `loss`: minus the cross-entropy of the true label (Yeom et al. 2018): training rows fit better.
- `mentr`: minus the modified prediction entropy (Song & Mittal 2021), which, unlike plain entropy, is
  low only when the model is confident *and* right, so a confident wrong answer does not look like a
  member.

Members and non-members are balanced (a seeded sample of the larger set down to the smaller, capped),
so an AUC of 0.5 is chance. Each attack reports the ROC AUC, a bootstrap interval of it (members and
non-members resampled separately), and the TPR at 1% FPR: the largest true-positive rate among the
ROC curve's points with a false-positive rate of at most 0.01 (a step, not interpolated).
Pure numpy / scipy / sklearn; no MLflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-300  # probabilities are clipped here so that log(0) does not appear
MAX_PAIRS = 10_000
RESAMPLES = 200
LOW_FPR = 0.01
PREFIX = "privacy/membership"


def _true_and_rest(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p as float64, p_y, 1 - p_y as the sum of the other classes' probabilities). A float32 p_y rounds
    to exactly 1 once the other classes hold less than 6e-8: a model that memorised its training rows
    and one merely confident on test rows would tie there, while the rest still tells them apart."""
    p = np.asarray(proba, dtype=np.float64)
    rows = np.arange(len(y))
    p_true = p[rows, y]
    others = p.copy()
    others[rows, y] = 0.0
    rest = others.sum(axis=1)
    return p, p_true, rest


def _log_true(p_true: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """log p_y, exact at both ends: from p_y when it is small, from log1p(-rest) when it is close to 1."""
    return np.where(p_true > 0.5, np.log1p(-np.minimum(rest, 0.5)), np.log(np.clip(p_true, EPS, 1.0)))


def loss_scores(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minus the cross-entropy of the true label, per row: log p_y (higher = better fitted)."""
    _, p_true, rest = _true_and_rest(proba, y)
    return _log_true(p_true, rest)


def mentr_scores(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minus the modified entropy, per row:
    Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)."""
    p, p_true, rest = _true_and_rest(proba, y)
    rows = np.arange(len(y))
    others = p * np.log1p(-np.clip(p, 0.0, 1.0 - 1e-16))  # (N, C); the true class's term is replaced
    others[rows, y] = 0.0
    mentr = -rest * _log_true(p_true, rest) - others.sum(axis=1)
    return -mentr


def balanced_indices(
    n_members: int, n_nonmembers: int, seed: int, max_pairs: int = MAX_PAIRS
) -> tuple[np.ndarray, np.ndarray]:
    """As many members as non-members, n = min(both, max_pairs): a seeded sample without replacement
    of each side that holds more (the indices of a side that already has n come back in order)."""
    rng = np.random.default_rng(seed)
    n = min(n_members, n_nonmembers, max_pairs)

    def pick(total: int) -> np.ndarray:
        return np.arange(total) if total == n else np.sort(rng.choice(total, size=n, replace=False))

    return pick(n_members), pick(n_nonmembers)


def resampled_aucs(
    members: np.ndarray, nonmembers: np.ndarray, member_picks: np.ndarray, nonmember_picks: np.ndarray
) -> np.ndarray:
    """The ROC AUC (ties count half) of each resample, row b drawing `members[member_picks[b]]` and
    `nonmembers[nonmember_picks[b]]`: from how often each distinct score is drawn on either side, so
    the scores are sorted once rather than once per resample."""
    values, inverse = np.unique(np.concatenate([members, nonmembers]), return_inverse=True)
    distinct = len(values)

    def drawn(where: np.ndarray, picks: np.ndarray) -> np.ndarray:  # (B, distinct) counts
        rows = np.arange(len(picks))[:, None] * distinct
        return np.bincount((rows + where[picks]).ravel(), minlength=len(picks) * distinct).reshape(
            len(picks), distinct
        )

    member_counts = drawn(inverse[: len(members)], member_picks)
    nonmember_counts = drawn(inverse[len(members) :], nonmember_picks)
    below = np.cumsum(nonmember_counts, axis=1) - nonmember_counts  # non-members scoring lower
    wins = (member_counts * (below + 0.5 * nonmember_counts)).sum(axis=1)
    return wins / (member_picks.shape[1] * nonmember_picks.shape[1])


def auc_interval(
    members: np.ndarray,
    nonmembers: np.ndarray,
    seed: int,
    resamples: int = RESAMPLES,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC; members and non-members resampled separately."""
    rng = np.random.default_rng(seed)
    member_picks = rng.integers(0, len(members), size=(resamples, len(members)))
    nonmember_picks = rng.integers(0, len(nonmembers), size=(resamples, len(nonmembers)))
    aucs = resampled_aucs(members, nonmembers, member_picks, nonmember_picks)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(aucs, [tail, 1.0 - tail])
    return float(low), float(high)


def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float = LOW_FPR) -> float:
    """The largest TPR among the ROC curve's points whose FPR is at most `fpr` (no interpolation)."""
    from sklearn.metrics import roc_curve

    truth = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    fprs, tprs, _ = roc_curve(truth, np.concatenate([members, nonmembers]))
    return float(tprs[fprs <= fpr].max())


def audit(
    train_proba: np.ndarray,
    train_y: np.ndarray,
    test_proba: np.ndarray,
    test_y: np.ndarray,
    seed: int = 0,
    max_pairs: int = MAX_PAIRS,
    resamples: int = RESAMPLES,
) -> dict[str, Any]:
    """The audit's metrics (`privacy/membership_*`) from per-row class probabilities of the training
    rows (members) and test rows (non-members); empty when either side has fewer than 2 rows."""
    from sklearn.metrics import roc_auc_score

    if min(len(train_y), len(test_y)) < 2:
        return {}
    inside, outside = balanced_indices(len(train_y), len(test_y), seed, max_pairs)
    train_y, test_y = np.asarray(train_y, dtype=int), np.asarray(test_y, dtype=int)
    scores: dict[str, Any] = {f"{PREFIX}_pairs": len(inside)}
    for name, score in (("", loss_scores), ("_mentr", mentr_scores)):
        members = score(train_proba[inside], train_y[inside])
        nonmembers = score(test_proba[outside], test_y[outside])
        truth = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
        auc = float(roc_auc_score(truth, np.concatenate([members, nonmembers])))
        scores[f"{PREFIX}{name}_auc"] = round(auc, 6)
        scores[f"{PREFIX}{name}_tpr_at_1pct_fpr"] = round(tpr_at_fpr(members, nonmembers), 6)
        if not name:  # the gated attack carries the interval
            low, high = auc_interval(members, nonmembers, seed, resamples)
            scores[f"{PREFIX}_auc/ci_low"], scores[f"{PREFIX}_auc/ci_high"] = round(low, 6), round(high, 6)
    return scores
