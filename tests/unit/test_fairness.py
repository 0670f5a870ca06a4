"""Fairness report against hand-computed tiny cases, including small-group flagging."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlops.evaluation.fairness import fairness_report

#           rows: 0  1  2  3  4  5  6  7
Y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
PRED = np.array([1, 1, 1, 1, 1, 0, 0, 0])
SEX = np.array(list("aaaabbbb"))  # a: sel 1, TPR 1, FPR 1, acc 1/2; b: sel 1/4, TPR 1/2, FPR 0, acc 3/4
AGE = np.array(list("yoyoyoyo"))  # y: sel 3/4, TPR 1, FPR 1/2, acc 3/4; o: sel 1/2, TPR 1/2, FPR 1/2, acc 1/2


def test_binary_gaps_match_hand_values() -> None:
    flat, tables = fairness_report(Y, PRED, {"sex": SEX, "age": AGE}, min_group_size=4)
    assert flat == {
        "fairness/sex/demographic_parity_difference": 0.75,
        "fairness/sex/demographic_parity_ratio": 0.25,
        "fairness/sex/equalized_odds_difference": 1.0,  # max(TPR gap 1/2, FPR gap 1)
        "fairness/sex/accuracy_difference": 0.25,
        "fairness/sex/groups": 2,
        "fairness/sex/groups_measurable": 2,
        "fairness/age/demographic_parity_difference": 0.25,
        "fairness/age/demographic_parity_ratio": 0.666667,
        "fairness/age/equalized_odds_difference": 0.5,  # max(TPR gap 1/2, FPR gap 0)
        "fairness/age/accuracy_difference": 0.25,
        "fairness/age/groups": 2,
        "fairness/age/groups_measurable": 2,
        "fairness/max/demographic_parity_difference": 0.75,
        "fairness/max/equalized_odds_difference": 1.0,
    }
    assert tables["sex"] == [
        {
            "group": "a",
            "count": 4,
            "selection_rate": 1.0,
            "tpr": 1.0,
            "fpr": 1.0,
            "accuracy": 0.5,
            "measurable": True,
        },
        {
            "group": "b",
            "count": 4,
            "selection_rate": 0.25,
            "tpr": 0.5,
            "fpr": 0.0,
            "accuracy": 0.75,
            "measurable": True,
        },
    ]
    json.dumps([flat, tables], allow_nan=False)


def test_small_groups_are_reported_flagged_and_excluded() -> None:
    # x: rows 0-3 (sel 1); y: rows 4-6 (sel 1/3, TPR 1/2, FPR 0); z: row 7 alone (sel 0, no positives)
    groups = {"site": np.array(list("xxxxyyyz"))}
    flat, tables = fairness_report(Y, PRED, groups, min_group_size=2)
    z = tables["site"][2]
    assert z == {
        "group": "z",
        "count": 1,
        "selection_rate": 0.0,
        "tpr": None,
        "fpr": 0.0,
        "accuracy": 1.0,
        "measurable": False,
    }
    # with z included the gap would be 1 − 0 = 1; without it 1 − 1/3
    assert flat["fairness/site/demographic_parity_difference"] == 0.666667
    assert flat["fairness/site/groups"] == 3
    assert flat["fairness/site/groups_measurable"] == 2


def test_fewer_than_two_measurable_groups_gives_none() -> None:
    flat, tables = fairness_report(Y, PRED, {"sex": SEX})  # default min_group_size 30 > 4 rows per group
    assert all(not row["measurable"] for row in tables["sex"])
    assert flat["fairness/sex/demographic_parity_difference"] is None
    assert flat["fairness/sex/equalized_odds_difference"] is None
    assert flat["fairness/max/demographic_parity_difference"] is None
    json.dumps(flat, allow_nan=False)


def test_max_skips_unmeasurable_attributes() -> None:
    big = {"sex": np.repeat(SEX, 10), "one": np.array(["u"] * 80)}
    flat, _ = fairness_report(np.repeat(Y, 10), np.repeat(PRED, 10), big, min_group_size=30)
    assert flat["fairness/one/demographic_parity_difference"] is None
    assert flat["fairness/max/demographic_parity_difference"] == 0.75


def test_multiclass_uses_worst_one_vs_rest_class() -> None:
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    pred = np.array([0, 1, 1, 0, 2, 2, 1, 1])
    flat, tables = fairness_report(y, pred, {"sex": SEX}, min_group_size=1, num_classes=3)
    # selection rates a/b: class 0 1/2 vs 0, class 1 1/2 vs 1/2, class 2 0 vs 1/2
    assert flat["fairness/sex/demographic_parity_difference"] == 0.5
    assert flat["fairness/sex/demographic_parity_ratio"] == 0.0
    # class 0: a TPR 1 (rows 0, 3), b TPR 0 (row 6 → 1)
    assert flat["fairness/sex/equalized_odds_difference"] == 1.0
    assert flat["fairness/sex/accuracy_difference"] == 0.25  # a 3/4, b 1/2
    assert tables["sex"][0]["selection_rate/0"] == 0.5
    assert tables["sex"][1]["selection_rate/2"] == 0.5


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="has 3 values"):
        fairness_report(Y, PRED, {"sex": SEX[:3]})
    with pytest.raises(ValueError, match="reserved"):
        fairness_report(Y, PRED, {"max": SEX})
