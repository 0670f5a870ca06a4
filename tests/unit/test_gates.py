"""Quality gates: every gate at its boundary, missing metrics, and the champion comparison."""

from __future__ import annotations

import json

import pytest

from dlops.gates import Decision, GateFailure, decide, headline, judge_control
from dlops.params import GatesConfig

GATES = GatesConfig(
    primary_metric="balanced_accuracy",
    min_primary=0.7,
    max_demographic_parity_difference=0.1,
    max_equalized_odds_difference=0.15,
    max_overfit_gap=0.05,
    promotion_tolerance=0.005,
)


def good(**overrides: float | None) -> dict[str, float | None]:
    metrics: dict[str, float | None] = {
        "test/balanced_accuracy": 0.8,
        "fairness/max/demographic_parity_difference": 0.05,
        "fairness/max/equalized_odds_difference": 0.05,
        "overfit/primary_gap": 0.01,
    }
    metrics.update(overrides)
    return {k: v for k, v in metrics.items() if v is not None}


def check(decision: Decision, name: str):
    return next(c for c in decision.checks if c.name == name)


@pytest.mark.parametrize(
    ("gate", "metric", "at_limit", "beyond"),
    [
        ("min_primary", "test/balanced_accuracy", 0.7, 0.6999),
        ("max_demographic_parity_difference", "fairness/max/demographic_parity_difference", 0.1, 0.1001),
        ("max_equalized_odds_difference", "fairness/max/equalized_odds_difference", 0.15, 0.1501),
        ("max_overfit_gap", "overfit/primary_gap", 0.05, 0.0501),
    ],
)
def test_each_gate_passes_at_its_limit_and_fails_beyond(
    gate: str, metric: str, at_limit: float, beyond: float
):
    passing = decide(good(**{metric: at_limit}), GATES, None)
    assert check(passing, gate).passed and passing.promote and passing.gates_passed

    failing = decide(good(**{metric: beyond}), GATES, None)
    assert not check(failing, gate).passed
    assert not failing.promote and not failing.gates_passed
    assert [c.name for c in failing.failed] == [gate]
    assert any(metric in r and str(beyond) in r for r in failing.reasons)


def test_overfit_gap_is_checked_as_an_absolute_value():
    decision = decide(good(**{"overfit/primary_gap": -0.08}), GATES, None)
    gap = check(decision, "max_overfit_gap")
    assert not gap.passed and gap.value == pytest.approx(0.08)
    assert not decision.promote


@pytest.mark.parametrize(
    "metric",
    [
        "test/balanced_accuracy",
        "fairness/max/demographic_parity_difference",
        "fairness/max/equalized_odds_difference",
        "overfit/primary_gap",
    ],
)
def test_a_missing_metric_fails_its_gate(metric: str):
    metrics = good()
    del metrics[metric]
    decision = decide(metrics, GATES, None)
    failed = decision.failed
    assert len(failed) == 1 and failed[0].metric == metric and failed[0].value is None
    assert any(metric in r and "missing" in r for r in decision.reasons)
    assert not decision.promote


@pytest.mark.parametrize("bad", [float("nan"), "n/a"])
def test_a_metric_that_is_not_a_number_fails(bad: object):
    decision = decide({**good(), "fairness/max/equalized_odds_difference": bad}, GATES, None)
    assert [c.name for c in decision.failed] == ["max_equalized_odds_difference"]
    assert not decision.promote


def test_first_model_is_promoted_when_gates_pass():
    decision = decide(good(), GATES, None)
    assert decision.promote and decision.champion_primary is None
    assert decision.candidate_primary == 0.8
    assert "no comparable champion" in decision.reasons[-1]


def test_worse_than_champion_beyond_tolerance_is_rejected():
    decision = decide(good(**{"test/balanced_accuracy": 0.80}), GATES, 0.81, champion_version="3")
    assert decision.gates_passed and not decision.promote
    assert decision.reasons[-1] == (
        "test/balanced_accuracy 0.800 is worse than champion v3 (0.810) beyond tolerance 0.005"
    )


def test_within_tolerance_of_champion_is_promoted():
    decision = decide(good(**{"test/balanced_accuracy": 0.812}), GATES, 0.815, champion_version="3")
    assert decision.promote
    assert decision.reasons[-1] == (
        "test/balanced_accuracy 0.812 is not worse than champion v3 (0.815) beyond tolerance 0.005"
    )


def test_failing_candidate_is_not_compared_even_if_better_than_champion():
    decision = decide(good(**{"fairness/max/demographic_parity_difference": 0.231}), GATES, 0.5, "2")
    assert not decision.promote
    assert (
        "fairness/max/demographic_parity_difference = 0.231 exceeds the limit 0.100"
        " (gates.max_demographic_parity_difference)" in decision.reasons
    )
    assert "not compared with champion v2" in decision.reasons[-1]


def test_reasons_show_enough_digits_to_tell_value_from_limit():
    decision = decide(good(**{"fairness/max/demographic_parity_difference": 0.10004}), GATES, None)
    assert (
        "fairness/max/demographic_parity_difference = 0.100040 exceeds the limit 0.100000"
        " (gates.max_demographic_parity_difference)" in decision.reasons
    )


def test_decision_round_trips_through_json_and_gate_failure_names_the_failures():
    decision = decide(good(**{"test/balanced_accuracy": 0.5}), GATES, None)
    data = json.loads(json.dumps({**decision.to_dict(), "model_name": "dlops-x", "version": "1"}))
    again = Decision.from_dict(data)
    assert again == decision

    error = GateFailure(again)
    assert error.decision is again
    assert "test/balanced_accuracy = 0.500 is below the minimum 0.700" in str(error)
    assert "fairness" not in str(error)  # passing gates are not listed as failures


def test_a_gate_left_null_is_not_checked_and_a_set_one_on_a_missing_metric_fails() -> None:
    generator = GatesConfig(
        primary_metric="sample_accuracy", min_primary=0.8, min_class_coverage=0.9, min_memorization_ratio=0.8
    )
    metrics = {
        "test/sample_accuracy": 0.85,
        "generate/class_coverage": 1.0,
        "generate/memorization_ratio": 0.95,
    }
    decision = decide(metrics, generator, None)
    assert [c.name for c in decision.checks] == [
        "min_primary",
        "min_class_coverage",
        "min_memorization_ratio",
    ]
    assert decision.promote
    copied = decide({**metrics, "generate/memorization_ratio": 0.1}, generator, None)
    assert not copied.promote and check(copied, "min_memorization_ratio").value == 0.1
    missing = decide({"test/sample_accuracy": 0.85}, generator, None)
    assert not missing.promote and "generate/class_coverage is missing" in " ".join(missing.reasons)


@pytest.mark.parametrize(
    ("report", "said"),
    [
        ({"version": "3", "promoted": True, "verdict": "promoted", "current_champion": "3"},
         "promoted to @champion"),
        ({"version": "3", "promoted": False, "verdict": "rejected", "current_champion": "2"},
         "rejected; @champion stays v2"),
        ({"version": "1", "promoted": False, "verdict": "rejected", "current_champion": None},
         "rejected; there is no champion"),
        ({"version": "1", "promoted": False, "verdict": "held", "current_champion": None},
         "held for a person to promote (`dlops promote`); there is no champion"),
        ({"version": "2", "promoted": False, "verdict": "promoted", "current_champion": "2"},
         "is already @champion"),
    ],
)  # fmt: skip
def test_register_says_the_versions_decision(report: dict, said: str) -> None:
    from dlops.cli import _register_verdict

    assert _register_verdict(report) == said  # never "kept the current champion" for a rejected version


@pytest.mark.parametrize("overfit_gap", [0.2, 0.01])
def test_a_control_is_never_promoted_and_says_whether_its_gate_caught_it(overfit_gap: float) -> None:
    decision = decide(good(**{"overfit/primary_gap": overfit_gap}), GATES, champion_primary=None)
    caught = judge_control(decision, "max_overfit_gap")
    assert caught is (overfit_gap > 0.05)
    assert not decision.promote and decision.verdict == "rejected"
    assert ("and it did" if caught else "but it passed") in decision.reasons[-1]


def test_every_limit_of_the_gates_section_is_a_gate_the_decision_checks() -> None:
    """gates.control is checked against the `min_`/`max_` fields; each must be a gate of GATES."""
    from dlops.gates import GATES

    limits = [name for name in GatesConfig.model_fields if name.startswith(("min_", "max_"))]
    assert sorted(GATES) == sorted(limits)


def test_the_headline_has_the_same_ten_keys_for_every_model_and_names_the_failed_gates() -> None:
    metrics = good(**{"test/balanced_accuracy/ci_low": 0.78, "test/balanced_accuracy/ci_high": 0.82})
    metrics["overfit/diagnosis"] = "ok"  # type: ignore[assignment]
    assert headline(metrics, GATES) == {
        "metric": "balanced_accuracy", "value": 0.8, "ci_low": 0.78, "ci_high": 0.82,
        "dp_gap": 0.05, "eo_gap": 0.05, "overfit_gap": 0.01, "diagnosis": "ok", "membership_auc": None,
        "gates": "passed",
    }  # fmt: skip
    failing = headline(good(**{"overfit/primary_gap": 0.2, "test/balanced_accuracy": 0.5}), GATES)
    assert failing["gates"] == "failed: min_primary, max_overfit_gap"
    sampler = GatesConfig(primary_metric="sample_accuracy", min_primary=0.5)
    generator = headline({"test/sample_accuracy": 0.9}, sampler)
    assert generator.keys() == failing.keys()
    assert generator["dp_gap"] is None and generator["gates"] == "passed"
