"""Bootstrap intervals and champion/challenger tests against sklearn, fairness_report and hand values."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from dlops.evaluation.fairness import fairness_report
from dlops.evaluation.report import clean
from dlops.evaluation.uncertainty import (
    FAIRNESS_GAPS,
    accuracy_replicates,
    balanced_accuracy_replicates,
    bootstrap_indices,
    fairness_gap_replicates,
    gap_intervals,
    identity_indices,
    mcnemar,
    metric_intervals,
    paired_bootstrap,
    percentile_interval,
    roc_auc_replicates,
    score_intervals,
    verdict,
)

GAPS = FAIRNESS_GAPS


def binary_task(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and P(class 1) that is informative and, rounded to 2 decimals, full of ties."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.round(np.clip(0.35 + 0.3 * y + rng.normal(0, 0.25, n), 0, 1), 2)
    return y, p1


def multiclass_task(n: int = 600, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def labels_with_accuracy(y: np.ndarray, accuracy: float, k: int, seed: int) -> np.ndarray:
    """Predictions equal to y except on a random (1 - accuracy) share of rows, moved to another class."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(y.size) >= accuracy
    return np.where(wrong, (y + rng.integers(1, k, y.size)) % k, y)


# ------------------------------------------------------------------------------------------ resampling
def test_bootstrap_indices_are_seeded_in_range_and_shaped() -> None:
    first, again, other = (
        bootstrap_indices(50, 20, 7),
        bootstrap_indices(50, 20, 7),
        bootstrap_indices(50, 20, 8),
    )
    assert first.shape == (20, 50)
    assert np.issubdtype(first.dtype, np.integer)
    assert first.min() >= 0 and first.max() <= 49
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_indices(0, 10, 0)


def test_percentile_interval_skips_undefined_replicates() -> None:
    values = np.concatenate([np.arange(101, dtype=float), [np.nan, np.nan]])
    assert percentile_interval(values, 0.9) == (5.0, 95.0)
    assert percentile_interval(np.full(4, np.nan), 0.95) == (None, None)
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(values, 1.0)


def test_replicates_match_sklearn_on_identity_and_on_resamples() -> None:
    y, p1 = binary_task()
    pred = (p1 > 0.5).astype(int)
    indices = np.vstack([identity_indices(y.size), bootstrap_indices(y.size, 4, 3)])
    auc = roc_auc_replicates(indices, y, p1)
    accuracy = accuracy_replicates(indices, y, pred)
    balanced = balanced_accuracy_replicates(indices, y, pred)
    for b, rows in enumerate(indices):
        assert auc[b] == pytest.approx(roc_auc_score(y[rows], p1[rows]), abs=1e-12)
        assert accuracy[b] == pytest.approx(accuracy_score(y[rows], pred[rows]), abs=1e-12)
        assert balanced[b] == pytest.approx(balanced_accuracy_score(y[rows], pred[rows]), abs=1e-12)


def test_balanced_accuracy_averages_only_classes_present_in_the_resample() -> None:
    y = np.array([0, 0, 1, 2])
    pred = np.array([0, 1, 1, 0])
    rows = np.array([[0, 1, 2, 2]])  # class 2 not drawn: recall 1/2 (class 0) and 1 (class 1)
    assert balanced_accuracy_replicates(rows, y, pred)[0] == pytest.approx(0.75)


def test_roc_auc_of_a_one_class_resample_is_nan() -> None:
    y, p1 = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.4, 0.6])
    values = roc_auc_replicates(np.array([[0, 2, 0, 2], [0, 1, 2, 3]]), y, p1)
    assert np.isnan(values[0])
    assert values[1] == 1.0


# ------------------------------------------------------------------------------------ metric intervals
def test_binary_metric_intervals_contain_the_point_and_are_seeded() -> None:
    y, p1 = binary_task()
    proba = np.column_stack([1 - p1, p1])
    intervals = metric_intervals(y, proba, n_boot=400, seed=5)
    assert metric_intervals(y, proba, n_boot=400, seed=5) == intervals
    assert metric_intervals(y, proba, n_boot=400, seed=6) != intervals
    pred = p1 > 0.5  # argmax of [1 - p, p] (a 0.5 tie goes to class 0)
    points = {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "roc_auc": roc_auc_score(y, p1),
    }
    assert set(intervals) == {f"test/{m}/{end}" for m in points for end in ("ci_low", "ci_high")}
    assert roc_auc_replicates(identity_indices(y.size), y, p1)[0] == pytest.approx(
        points["roc_auc"], abs=1e-12
    )
    for metric, point in points.items():
        low, high = intervals[f"test/{metric}/ci_low"], intervals[f"test/{metric}/ci_high"]
        assert low is not None and high is not None
        assert low < point < high
        assert high - low < 0.15  # 600 rows: a few points wide, not the whole unit interval
    json.dumps(intervals, allow_nan=False)


def test_multiclass_metric_intervals_have_no_roc_auc_and_honour_prefix_and_confidence() -> None:
    y, proba = multiclass_task()
    wide = metric_intervals(y, proba, n_boot=300, confidence=0.99, prefix="val")
    narrow = metric_intervals(y, proba, n_boot=300, confidence=0.5, prefix="val")
    assert set(wide) == {
        f"val/{m}/{end}" for m in ("accuracy", "balanced_accuracy") for end in ("ci_low", "ci_high")
    }
    assert wide["val/accuracy/ci_low"] < narrow["val/accuracy/ci_low"] < narrow["val/accuracy/ci_high"]
    assert narrow["val/accuracy/ci_high"] < wide["val/accuracy/ci_high"]
    point = accuracy_score(y, proba.argmax(axis=1))
    assert narrow["val/accuracy/ci_low"] < point < narrow["val/accuracy/ci_high"]


def test_roc_auc_interval_is_none_when_y_true_holds_one_class() -> None:
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    intervals = metric_intervals(np.zeros(3, dtype=int), proba, n_boot=50)
    assert intervals["test/roc_auc/ci_low"] is None and intervals["test/roc_auc/ci_high"] is None
    assert intervals["test/accuracy/ci_low"] is not None


def test_score_intervals_name_the_metric_and_contain_the_point() -> None:
    y, p1 = binary_task(seed=2)
    scores = 10.0 * p1 - 3.0  # any continuous score, not a probability
    intervals = score_intervals(y, scores, n_boot=300, prefix="anomaly", name="anomaly_roc_auc")
    assert set(intervals) == {"anomaly/anomaly_roc_auc/ci_low", "anomaly/anomaly_roc_auc/ci_high"}
    assert intervals["anomaly/anomaly_roc_auc/ci_low"] < roc_auc_score(y, scores)
    assert roc_auc_score(y, scores) < intervals["anomaly/anomaly_roc_auc/ci_high"]
    with pytest.raises(ValueError, match="0 or 1"):
        score_intervals(y + 1, scores)


def test_intervals_of_3000_rows_and_1000_replicates_take_well_under_a_second() -> None:
    y, p1 = binary_task(n=3000)
    proba = np.column_stack([1 - p1, p1])
    start = time.perf_counter()
    metric_intervals(y, proba, n_boot=1000)  # three metrics
    assert time.perf_counter() - start < 3.0  # ~0.05 s measured; loose for loaded CI machines


# -------------------------------------------------------------------------------------- fairness gaps
def fairness_data(k: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Random labels and predictions; `site` holds a 5-row group (unmeasurable at min_group_size 30)."""
    rng = np.random.default_rng(seed)
    n = 400
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    site = rng.choice(["north", "south", "east"], n)
    site[:5] = "tiny"
    groups = {
        "sex": rng.choice(["f", "m"], n),
        "site": site,
        "age<=30": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
    }
    return y, pred, groups


@pytest.mark.parametrize("k", [2, 3])
def test_fairness_point_estimates_equal_fairness_report(k: int) -> None:
    y, pred, groups = fairness_data(k, seed=k)
    flat, tables = fairness_report(y, pred, groups, min_group_size=30, num_classes=k)
    assert any(not row["measurable"] for row in tables["site"])  # the tiny group is excluded
    point = fairness_gap_replicates(y, pred, groups, k, identity_indices(y.size), min_group_size=30)
    assert set(point) == {f"fairness/{a}/{g}" for a in ("sex", "site", "agele30", "max") for g in GAPS}
    for key, values in point.items():
        assert flat[key] is not None
        assert clean(values[0]) == flat[key]


def test_fairness_replicate_equals_fairness_report_on_the_resampled_rows() -> None:
    # min_group_size=1: every group that the resample draws is measurable in both computations
    y, pred, groups = fairness_data(3, seed=9)
    rows = bootstrap_indices(y.size, 1, 4)
    replicate = fairness_gap_replicates(y, pred, groups, 3, rows, min_group_size=1)
    flat, _ = fairness_report(
        y[rows[0]], pred[rows[0]], {a: g[rows[0]] for a, g in groups.items()}, 1, num_classes=3
    )
    for key, values in replicate.items():
        assert clean(values[0]) == flat[key]


def test_a_group_without_both_outcomes_is_left_out_of_equalized_odds_only() -> None:
    # group c has no positives: EO over a, b only (TPR 1 vs 0, FPR 0 vs 1 → 1), DP over a, b, c (1 − 1/2)
    y = np.array([1, 0, 1, 0, 0, 0])
    pred = np.array([1, 0, 0, 1, 1, 1])
    groups = {"g": np.array(list("aabbcc"))}
    flat, _ = fairness_report(y, pred, groups, min_group_size=2)
    point = fairness_gap_replicates(y, pred, groups, 2, identity_indices(6), min_group_size=2)
    assert (
        clean(point["fairness/g/equalized_odds_difference"][0])
        == flat["fairness/g/equalized_odds_difference"]
        == 1.0
    )
    assert clean(point["fairness/g/demographic_parity_difference"][0]) == 0.5
    assert flat["fairness/g/demographic_parity_difference"] == 0.5


def test_gap_intervals_contain_the_point_are_seeded_and_none_when_unmeasurable() -> None:
    y, pred, groups = fairness_data(2, seed=1)
    groups["one"] = np.where(np.arange(y.size) < 20, "small", "big")  # only "big" is measurable
    intervals = gap_intervals(y, pred, groups, num_classes=2, n_boot=300, seed=3)
    assert gap_intervals(y, pred, groups, num_classes=2, n_boot=300, seed=3) == intervals
    flat, _ = fairness_report(y, pred, groups, num_classes=2)
    for attr in ("sex", "site", "agele30", "max"):
        for gap in GAPS:
            low, high = (
                intervals[f"fairness/{attr}/{gap}/ci_low"],
                intervals[f"fairness/{attr}/{gap}/ci_high"],
            )
            assert low is not None and high is not None
            assert 0.0 <= low <= flat[f"fairness/{attr}/{gap}"] <= high <= 1.0
    for gap in GAPS:
        assert intervals[f"fairness/one/{gap}/ci_low"] is None
        assert intervals[f"fairness/one/{gap}/ci_high"] is None
    assert len(intervals) == 5 * len(GAPS) * 2
    json.dumps(intervals, allow_nan=False)


def test_gap_intervals_reject_bad_inputs() -> None:
    y, pred, groups = fairness_data(2, seed=0)
    with pytest.raises(ValueError, match="reserved"):
        gap_intervals(y, pred, {"max": groups["sex"]}, num_classes=2, n_boot=10)
    with pytest.raises(ValueError, match="has 3 values"):
        gap_intervals(y, pred, {"sex": groups["sex"][:3]}, num_classes=2, n_boot=10)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        gap_intervals(y + 1, pred, groups, num_classes=2, n_boot=10)


# --------------------------------------------------------------------------------- champion/challenger
@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy"])
def test_identical_predictions_are_indistinguishable(metric: str) -> None:
    y = np.random.default_rng(0).integers(0, 3, 500)
    pred = labels_with_accuracy(y, 0.8, 3, seed=1)
    result = paired_bootstrap(y, pred, pred.copy(), metric, n_boot=200)
    assert result["difference"] == 0.0
    assert result["ci_low"] == 0.0 and result["ci_high"] == 0.0
    assert verdict(result, 0.95) == "indistinguishable"
    test = mcnemar(y, pred, pred.copy())
    assert (test["b"], test["c"], test["p_value"], test["difference"]) == (0, 0, 1.0, 0.0)
    assert verdict(test, 0.95) == "indistinguishable"


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy"])
def test_a_clearly_better_candidate_is_better_and_the_reverse_worse(metric: str) -> None:
    y = np.random.default_rng(0).integers(0, 2, 2000)
    strong, weak = labels_with_accuracy(y, 0.9, 2, seed=1), labels_with_accuracy(y, 0.8, 2, seed=2)
    result = paired_bootstrap(y, strong, weak, metric, n_boot=500, seed=4)
    assert paired_bootstrap(y, strong, weak, metric, n_boot=500, seed=4) == result
    score = accuracy_score if metric == "accuracy" else balanced_accuracy_score
    assert result["candidate"] == clean(score(y, strong))
    assert result["champion"] == clean(score(y, weak))
    assert result["difference"] == clean(score(y, strong) - score(y, weak))
    assert result["difference"] > 0.05
    assert 0 < result["ci_low"] < result["difference"] < result["ci_high"]
    assert {k: result[k] for k in ("metric", "confidence", "n_boot", "method")} == {
        "metric": metric,
        "confidence": 0.95,
        "n_boot": 500,
        "method": "paired_bootstrap",
    }
    assert verdict(result, 0.95) == "better"
    assert verdict(paired_bootstrap(y, weak, strong, metric, n_boot=500), 0.95) == "worse"
    assert verdict(mcnemar(y, strong, weak), 0.95) == "better"
    assert verdict(mcnemar(y, weak, strong), 0.95) == "worse"


def test_paired_bootstrap_of_roc_auc_scores() -> None:
    y, p1 = binary_task(n=2000, seed=3)
    noisy = np.clip(p1 + np.random.default_rng(5).normal(0, 0.4, y.size), 0, 1)
    result = paired_bootstrap(y, p1, noisy, "anomaly_roc_auc", n_boot=300)
    assert result["candidate"] == clean(roc_auc_score(y, p1))
    assert result["champion"] == clean(roc_auc_score(y, noisy))
    assert verdict(result, 0.95) == "better"
    same = paired_bootstrap(y, p1, p1, "roc_auc", n_boot=100)
    assert (same["difference"], same["ci_low"], same["ci_high"]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap(y, p1, noisy, "f1")


def test_mcnemar_p_value_matches_the_hand_computed_binomial() -> None:
    # 8 rows only the candidate gets right, 2 only the champion, 10 both: b = 8, c = 2.
    # Two-sided exact p = 2 * P(X <= 2), X ~ Binomial(10, 1/2) = 2 * (1 + 10 + 45) / 1024 = 0.109375
    y = np.zeros(20, dtype=int)
    candidate = np.array([0] * 8 + [1] * 2 + [0] * 10)
    champion = np.array([1] * 8 + [0] * 2 + [0] * 10)
    test = mcnemar(y, candidate, champion)
    assert (test["b"], test["c"]) == (8, 2)
    assert test["p_value"] == pytest.approx(112 / 1024, abs=1e-12)
    assert test["difference"] == 0.3  # (8 − 2) / 20
    assert (test["candidate"], test["champion"], test["method"]) == (0.9, 0.6, "mcnemar")
    assert verdict(test, 0.95) == "indistinguishable"
    assert verdict(test, 0.85) == "better"  # p 0.109 < 0.15
    # b = 10, c = 0: p = 2 / 1024
    one_sided = mcnemar(y, np.zeros(20, dtype=int), np.array([1] * 10 + [0] * 10))
    assert one_sided["p_value"] == pytest.approx(2 / 1024, abs=1e-12)
    assert verdict(one_sided, 0.99) == "better"


def test_verdict_rejects_unknown_results() -> None:
    with pytest.raises(ValueError, match="unknown test method"):
        verdict({"method": "t-test"}, 0.95)
