"""Classification metrics and ECE against hand-computed tiny cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dlops.evaluation.metrics import (
    calibration_bins,
    check_predictions,
    classification_metrics,
    confusion,
    expected_calibration_error,
    predictions_table,
)
from dlops.evaluation.report import clean, flatten, key_part

# Binary hand case: y = 0,0,0,1,1,1; P(class 1) below; predicted 0,0,1,0,1,1.
# TP 2, FN 1, FP 1, TN 2 → accuracy 4/6, every per-class precision/recall/F1 2/3.
Y = np.array([0, 0, 0, 1, 1, 1])
P1 = np.array([0.1, 0.3, 0.7, 0.25, 0.9, 0.9])
PROBA = np.column_stack([1 - P1, P1])


def test_binary_metrics_match_hand_values() -> None:
    m = classification_metrics(Y, PROBA, ["<=50K", ">50K"], "test")
    assert m["test/n"] == 6
    assert m["test/accuracy"] == 0.666667
    assert m["test/balanced_accuracy"] == 0.666667
    assert m["test/f1"] == 0.666667
    # positives 0.25, 0.9, 0.9 vs negatives 0.1, 0.3, 0.7: 1 + 3 + 3 of 9 pairs ordered correctly
    assert m["test/roc_auc"] == round(7 / 9, 6)
    # probability given to the true class: 0.9, 0.7, 0.3, 0.25, 0.9, 0.9
    assert m["test/log_loss"] == round(-math.log(0.9**3 * 0.7 * 0.3 * 0.25) / 6, 6)
    assert m["test/brier"] == round((0.01 + 0.09 + 0.49 + 0.5625 + 0.01 + 0.01) / 6, 6)
    # confidence bins: {0.7 ✓, 0.7 ✗}, {0.75 ✗}, {0.9 ✓ ×3}
    assert m["test/ece"] == round((2 * 0.2 + 0.75 + 3 * 0.1) / 6, 6)
    for name in ("le50K", "gt50K"):
        for stat in ("precision", "recall", "f1"):
            assert m[f"test/class/{name}/{stat}"] == 0.666667
        assert m[f"test/class/{name}/support"] == 3
    assert m["test/worst_class_recall"] == 0.666667
    json.dumps(m, allow_nan=False)


# Multiclass hand case: predicted 0,1,1,1,2,0 for y 0,0,1,1,2,2.
Y3 = np.array([0, 0, 1, 1, 2, 2])
PROBA3 = np.array(
    [
        [0.6, 0.2, 0.2],
        [0.3, 0.5, 0.2],
        [0.1, 0.8, 0.1],
        [0.2, 0.7, 0.1],
        [0.1, 0.1, 0.8],
        [0.5, 0.2, 0.3],
    ]
)


def test_multiclass_metrics_match_hand_values() -> None:
    m = classification_metrics(Y3, PROBA3, ["a", "b", "c"], "val")
    assert m["val/accuracy"] == 0.666667
    assert m["val/balanced_accuracy"] == 0.666667  # recalls 1/2, 1, 1/2
    # F1 per class: a 1/2, b 2·(2/3·1)/(2/3+1) = 0.8, c 2·(1·1/2)/(3/2) = 2/3
    assert m["val/class/a/f1"] == 0.5
    assert m["val/class/b/f1"] == 0.8
    assert m["val/class/c/f1"] == 0.666667
    assert m["val/class/b/precision"] == 0.666667
    assert m["val/f1"] == round((0.5 + 0.8 + 2 / 3) / 3, 6)
    # one-vs-rest AUCs: a 7/8, b 1, c 1
    assert m["val/roc_auc"] == round((7 / 8 + 1 + 1) / 3, 6)
    assert m["val/log_loss"] == round(-math.log(0.6 * 0.3 * 0.8 * 0.7 * 0.8 * 0.3) / 6, 6)
    assert m["val/worst_class_recall"] == 0.5
    assert "val/brier" not in m


def test_absent_and_never_predicted_classes_give_none_not_nan() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    m = classification_metrics(y, proba, ["a", "b", "c"], "test")
    assert m["test/roc_auc"] is None  # class c absent from y_true
    assert m["test/class/c/recall"] is None
    assert m["test/class/c/precision"] is None  # c never predicted either
    assert m["test/class/c/support"] == 0
    assert m["test/worst_class_recall"] == 0.5  # over present classes a (1/2) and b (1)
    json.dumps(m, allow_nan=False)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_binary_with_one_class_present() -> None:
    m = classification_metrics(np.zeros(3, dtype=int), PROBA[:3], ["no", "yes"], "test")
    assert m["test/roc_auc"] is None
    assert m["test/f1"] == 0.0  # no positive in truth and one false positive
    json.dumps(m, allow_nan=False)


def test_ece_is_zero_when_perfectly_calibrated() -> None:
    # 10 rows at confidence 0.7 with 7 right, 10 rows at confidence 0.9 with 9 right
    proba = np.array([[0.3, 0.7]] * 10 + [[0.9, 0.1]] * 10)
    y = np.array([1] * 7 + [0] * 3 + [0] * 9 + [1] * 1)
    assert expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_an_overconfident_model() -> None:
    # confidence 0.95 but 6/10 right (gap 0.35); confidence 0.75 but 5/10 right (gap 0.25)
    proba = np.array([[0.05, 0.95]] * 10 + [[0.25, 0.75]] * 10)
    y = np.array([1] * 6 + [0] * 4 + [1] * 5 + [0] * 5)
    assert expected_calibration_error(y, proba) == pytest.approx((10 * 0.35 + 10 * 0.25) / 20, abs=1e-12)
    # one bin: |accuracy − mean confidence| over everything = |11/20 − 0.85|
    assert expected_calibration_error(y, proba, n_bins=1) == pytest.approx(0.3, abs=1e-12)


def test_calibration_bins_are_right_closed() -> None:
    proba = np.array([[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]])
    bins = calibration_bins(np.array([0, 1, 1]), proba, n_bins=2)
    assert bins == [
        {"lower": 0.0, "upper": 0.5, "count": 2, "confidence": 0.5, "accuracy": 0.5},
        {"lower": 0.5, "upper": 1.0, "count": 1, "confidence": 1.0, "accuracy": 1.0},
    ]


def test_confusion_rows_are_actual_columns_predicted() -> None:
    out = confusion(Y3, PROBA3.argmax(axis=1), ["a", "b", "c"])
    assert out == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 1]]}
    json.dumps(out, allow_nan=False)


def test_predictions_table() -> None:
    table = predictions_table(Y, PROBA, ["no", "yes"])
    assert list(table.columns) == ["actual", "predicted", "score"]
    assert table["actual"].tolist() == ["no", "no", "no", "yes", "yes", "yes"]
    assert table["predicted"].tolist() == ["no", "no", "yes", "no", "yes", "yes"]
    assert table["score"].tolist() == [0.9, 0.7, 0.7, 0.75, 0.9, 0.9]


@pytest.mark.parametrize(
    ("y", "proba", "match"),
    [
        (np.array([0, 1]), np.array([[0.5, 0.5]]), "expected y_true"),
        (np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]), "labels must be integers"),
        (np.array([0, 1]), np.array([[0.5, 0.6], [0.5, 0.5]]), "sum to 1"),
        (np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]), "NaN"),
    ],
)
def test_bad_inputs_are_rejected(y: np.ndarray, proba: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_predictions(y, proba)


def test_float32_softmax_rows_are_accepted() -> None:
    proba = np.array([[0.1, 0.2, 0.7]], dtype=np.float32).astype(np.float64) + 1e-7
    _, p = check_predictions(np.array([2]), proba)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_report_helpers() -> None:
    assert clean(float("nan")) is None
    assert clean(np.float32(0.1234567)) == 0.123457
    assert clean(-0.0) == 0.0 and str(clean(-0.0)) == "0.0"
    assert clean(np.int64(3)) == 3 and clean(True) is True
    assert key_part("<=50K") == "le50K" and key_part(">50K") == "gt50K" and key_part("..") == "_"
    assert flatten("a", {"b": {"c": 1.23456789}, "d": None}) == {"a/b/c": 1.234568, "a/d": None}
