"""Overfitting diagnosis on synthetic histories."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dlops.evaluation.overfitting import diagnose, given_test_split


def _history(train: list[float], val: list[float], best_epoch: int | None = None) -> dict[str, Any]:
    rows = [
        {"epoch": i + 1, "train/loss": t, "val/loss": v, "lr": 1e-3}
        for i, (t, v) in enumerate(zip(train, val, strict=True))
    ]
    if best_epoch is None:
        best_epoch = min(range(len(val)), key=val.__getitem__) + 1
    return {"epochs": rows, "best_epoch": best_epoch, "stopped_early": False}


GOOD = {"train/accuracy": 0.9, "val/accuracy": 0.88, "test/accuracy": 0.87}
MONOTONE = _history([1.0, 0.8, 0.6, 0.5, 0.45], [1.1, 0.9, 0.7, 0.6, 0.55])
# best at epoch 3, then val rises for 3 epochs (well above 1% of the best) while train keeps falling
TURNS_UP = _history([1.0, 0.7, 0.5, 0.4, 0.3, 0.2], [1.0, 0.8, 0.6, 0.65, 0.7, 0.8])


def test_monotone_history_is_ok() -> None:
    out = diagnose(MONOTONE, GOOD, "accuracy", gap_limit=0.05)
    assert out == {
        "overfit/loss_gap_val_train": 0.1,
        "overfit/loss_gap_val_train_final": 0.1,
        "overfit/primary_gap_train_val": 0.02,
        "overfit/primary_gap_train_test": 0.03,
        "overfit/primary_gap": 0.03,
        "overfit/gap_basis": "train - test",
        "overfit/best_epoch": 5,
        "overfit/epochs_run": 5,
        "overfit/diverged": False,
        "overfit/diagnosis": "ok",
    }
    json.dumps(out, allow_nan=False)


def test_rising_val_loss_while_train_falls_is_divergence() -> None:
    out = diagnose(TURNS_UP, GOOD, "accuracy", gap_limit=0.05)
    assert out["overfit/diverged"] is True
    assert out["overfit/diagnosis"] == "diverged"
    assert out["overfit/best_epoch"] == 3
    assert out["overfit/loss_gap_val_train"] == 0.1  # 0.6 − 0.5 at the best epoch
    assert out["overfit/loss_gap_val_train_final"] == 0.6  # 0.8 − 0.2 at the last


@pytest.mark.parametrize(
    ("train", "val"),
    [
        ([1.0, 0.7, 0.5, 0.4, 0.3], [1.0, 0.8, 0.6, 0.65, 0.6]),  # one rising epoch only
        ([1.0, 0.7, 0.5, 0.6, 0.7], [1.0, 0.8, 0.6, 0.65, 0.7]),  # train rises too: not overfitting
        ([1.0, 0.7, 0.5, 0.4, 0.3], [1.0, 0.8, 0.6, 0.602, 0.604]),  # within the 1% margin
        ([1.0, 0.7, 0.5, 0.4, 0.3], [1.0, 0.8, 0.6, 0.7, 0.65]),  # rise, dip, rise: not consecutive
    ],
)
def test_no_false_alarm(train: list[float], val: list[float]) -> None:
    out = diagnose(_history(train, val), GOOD, "accuracy", gap_limit=0.05)
    assert out["overfit/diverged"] is False
    assert out["overfit/diagnosis"] == "ok"


def test_primary_gap_beyond_limit_is_overfitting() -> None:
    metrics = {"train/balanced_accuracy": 0.95, "val/balanced_accuracy": 0.85, "test/balanced_accuracy": 0.9}
    out = diagnose(TURNS_UP, metrics, "balanced_accuracy", gap_limit=0.05)
    assert out["overfit/primary_gap_train_val"] == 0.1
    assert out["overfit/primary_gap_train_test"] == 0.05
    assert out["overfit/diagnosis"] == "overfitting"  # outranks the divergence warning


def test_a_given_test_split_is_judged_on_train_minus_val_and_its_gap_to_val_is_shift() -> None:
    """SST-2-like: fits its training phrases (train 0.93, val 0.91), scores 0.85 on the official
    sentences. The 0.08 train − test gap is mostly the phrase/sentence shift, not overfitting."""
    metrics = {"train/accuracy": 0.93, "val/accuracy": 0.91, "test/accuracy": 0.85}
    carved = diagnose(MONOTONE, metrics, "accuracy", gap_limit=0.05)
    assert carved["overfit/primary_gap"] == 0.08 and carved["overfit/diagnosis"] == "overfitting"
    assert "shift/primary_gap_val_test" not in carved

    given = diagnose(MONOTONE, metrics, "accuracy", gap_limit=0.05, test_given=True)
    assert given["overfit/primary_gap"] == 0.02
    assert given["overfit/primary_gap_train_test"] == 0.08  # still reported
    assert given["overfit/gap_basis"] == "train - val (test split given)"
    assert given["shift/primary_gap_val_test"] == 0.06
    assert given["overfit/diagnosis"] == "ok"

    overfit = {"train/accuracy": 0.99, "val/accuracy": 0.9, "test/accuracy": 0.89}  # same-distribution test
    out = diagnose(MONOTONE, overfit, "accuracy", gap_limit=0.05, test_given=True)
    assert out["overfit/primary_gap"] == 0.09 and out["overfit/diagnosis"] == "overfitting"


def test_given_test_split_reads_the_split_provenance() -> None:
    given = {"split": {"how": "given", "given": {"train": 900, "val": 0, "test": 100}}}
    assert given_test_split(given)
    assert not given_test_split({"split": {"how": "given", "given": {"train": 900, "val": 100, "test": 0}}})
    assert not given_test_split({"split": {"how": "fractions", "train": 0.7, "val": 0.15, "test": 0.15}})
    assert not given_test_split({})  # a transform.json from before provenance was recorded


def test_gap_equal_to_limit_is_not_overfitting() -> None:
    metrics = {
        "train/f1": 0.9,
        "val/f1": 0.85,
        "test/f1": 0.85,
    }  # 0.9 − 0.85 is 0.05000000000000004 in floats
    assert diagnose(MONOTONE, metrics, "f1", gap_limit=0.05)["overfit/diagnosis"] == "ok"


def test_poor_train_metric_is_underfitting() -> None:
    metrics = {"train/accuracy": 0.55, "val/accuracy": 0.54, "test/accuracy": 0.53}
    assert diagnose(MONOTONE, metrics, "accuracy", gap_limit=0.05)["overfit/diagnosis"] == "underfitting"
    out = diagnose(MONOTONE, metrics, "accuracy", gap_limit=0.05, underfit_below=0.5)
    assert out["overfit/diagnosis"] == "ok"


def test_non_finite_loss_is_divergence() -> None:
    out = diagnose(_history([1.0, 0.5, float("nan")], [1.0, 0.6, 0.7], best_epoch=2), GOOD, "accuracy", 0.05)
    assert out["overfit/diverged"] is True
    assert out["overfit/diagnosis"] == "diverged"
    json.dumps(out, allow_nan=False)


def test_missing_split_metric_gives_none_gap() -> None:
    out = diagnose(MONOTONE, {"train/accuracy": 0.9, "val/accuracy": 0.89}, "accuracy", gap_limit=0.05)
    assert out["overfit/primary_gap_train_test"] is None
    assert out["overfit/primary_gap_train_val"] == 0.01
    assert out["overfit/diagnosis"] == "ok"


def test_bad_history_is_rejected() -> None:
    with pytest.raises(ValueError, match="no epochs"):
        diagnose({"epochs": []}, GOOD, "accuracy", 0.05)
    with pytest.raises(ValueError, match="lacks 'val/loss'"):
        diagnose({"epochs": [{"epoch": 1, "train/loss": 1.0}]}, GOOD, "accuracy", 0.05)
