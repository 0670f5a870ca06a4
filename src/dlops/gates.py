"""Quality gates and the promotion decision: pure functions over a metrics dict, no MLflow.

A candidate may become @champion only when every gate passes and the comparison with the current
champion allows it. A metric that is missing or not a number fails its gate: a gate never passes by
default. The verdict is one of:

- `rejected`: a gate failed, or the candidate is worse than the champion (with confidence, for a paired
  test; beyond `promotion_tolerance` otherwise);
- `promoted`: gates passed and it is better with confidence, or there is no champion yet
  (`first_version: promote`), or it is indistinguishable and `when_indistinguishable: promote`;
- `kept`: gates passed, indistinguishable from the champion, and `when_indistinguishable: keep`;
- `held`: gates passed, no champion yet, and `first_version: hold` (a person decides: `dlops promote`).

A control (`gates.control` names the one gate a model is built to fail) is never promoted: its verdict is
`rejected` whatever the gates say, and `judge_control` says whether its gate caught it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from dlops.errors import DlopsError, Rejected
from dlops.params import GatesConfig

Op = Literal["<=", ">="]

# metric-key prefixes of the figures shown first: evaluate's printout, the model card, a version's tags
DIAGNOSIS_PREFIXES = ("overfit/", "shift/")  # overfitting (train − test, or − val) and val − test shift
HEADLINE_PREFIXES = ("test/", "fairness/max/", *DIAGNOSIS_PREFIXES)

# gate name (the GatesConfig field holding its limit) -> (metrics key, comparison, use |value|)
# A gate whose limit is null in params is not checked (and not listed); `min_primary` is always set.
FAIRNESS_GATES = ("max_demographic_parity_difference", "max_equalized_odds_difference", "max_group_error_gap")
GATES: dict[str, tuple[str, Op, bool]] = {
    "min_primary": ("test/{primary}", ">=", False),
    "max_demographic_parity_difference": ("fairness/max/demographic_parity_difference", "<=", False),
    "max_equalized_odds_difference": ("fairness/max/equalized_odds_difference", "<=", False),
    "max_class_recall_gap": ("bias/class_recall_gap", "<=", False),
    "max_overfit_gap": ("overfit/primary_gap", "<=", True),  # train − test, or − val: overfitting.py
    "max_epsilon": ("privacy/epsilon", "<=", False),
    "max_reconstruction_gap": ("overfit/reconstruction_gap", "<=", False),
    "min_class_coverage": ("generate/class_coverage", ">=", False),
    "min_memorization_ratio": ("generate/memorization_ratio", ">=", False),
    "max_mase": ("test/mase", "<=", False),
    "max_coverage_error": ("forecast/coverage_error", "<=", False),
    "max_group_error_gap": ("fairness/group_error_gap", "<=", False),
    "max_membership_auc": ("privacy/membership_auc", "<=", False),
}


@dataclass
class GateCheck:
    name: str  # the GatesConfig field that sets the limit, e.g. "max_overfit_gap"
    value: float | None  # None when the metric is missing or not a number
    limit: float
    op: Op
    passed: bool
    metric: str = ""  # the metrics key the gate reads, e.g. "fairness/max/equalized_odds_difference"


@dataclass
class Decision:
    promote: bool
    checks: list[GateCheck]
    reasons: list[str]
    champion_version: str | None
    primary_metric: str  # the full key, e.g. "test/balanced_accuracy"
    candidate_primary: float | None
    champion_primary: float | None
    gates_passed: bool = field(default=False)
    verdict: str = "rejected"  # promoted | kept | rejected | held (see the module docstring)
    comparison: dict[str, Any] | None = None  # the paired test against the champion, when one ran

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        """Rebuild from `to_dict()` output (extra keys, such as a registration report's, are ignored)."""
        checks = [GateCheck(**check) for check in data["checks"]]
        names = {f for f in cls.__dataclass_fields__ if f != "checks"}
        return cls(checks=checks, **{k: v for k, v in data.items() if k in names})

    @property
    def failed(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]


class GateFailure(Rejected, RuntimeError):
    """A candidate failed at least one gate; `.decision` holds every check and reason."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        failed = [r for r, c in zip(decision.reasons, decision.checks, strict=False) if not c.passed]
        super().__init__("quality gates failed: " + "; ".join(failed or decision.reasons))


class ControlNotCaught(DlopsError):
    """A control model passed the gate it was built to fail: that gate does not catch what it must."""

    label = "control not caught"


def judge_control(decision: Decision, control: str) -> bool:
    """Make the decision of a control model (built to fail gate `control`): never promoted, with a reason
    saying whether that gate caught it. Returns whether it did."""
    check = next((c for c in decision.checks if c.name == control), None)
    caught = check is not None and not check.passed
    decision.promote, decision.verdict = False, "rejected"
    decision.reasons.append(
        f"control model: built to fail {control}, and it did: the gate catches what it must"
        if caught
        else f"control model: built to fail {control}, but it passed: that gate does not catch what this "
        "model was built to show; never promoted"
    )
    return caught


def decide(
    metrics: dict[str, Any],
    gates: GatesConfig,
    champion_primary: float | None,
    champion_version: str | None = None,
    comparison: dict[str, Any] | None = None,
) -> Decision:
    """Check every gate, then (only if all pass) compare with the champion.

    `comparison` is a paired test on the same test rows (dlops.evaluation.uncertainty, with a `verdict`
    of better / worse / indistinguishable); without one, `champion_primary` is compared within
    `promotion_tolerance`, and None for both means there is no comparable champion. `reasons` holds
    one sentence per gate, in `checks` order, then the comparison.
    """
    primary = f"test/{gates.primary_metric}"
    checks, reasons = [], []
    for name, (template, op, absolute) in GATES.items():
        limit = getattr(gates, name)
        if limit is None:
            continue
        key = template.format(primary=gates.primary_metric)
        confident = gates.fairness_rule == "confident" and name in FAIRNESS_GATES
        check, reason = _check(name, key, metrics, op, limit, absolute, confident)
        checks.append(check)
        reasons.append(reason)

    candidate = _number(metrics.get(primary))
    gates_passed = all(check.passed for check in checks)
    who = f"champion v{champion_version}" if champion_version else "the champion"
    if not gates_passed:
        verdict = "rejected"
        failed = f"{sum(not c.passed for c in checks)} gate(s) failed"
        reasons.append(
            f"not compared with {who}: {failed}" if champion_version else f"not promoted: {failed}"
        )
    elif comparison is not None:
        verdict, reason = _paired_verdict(comparison, gates, who)
        reasons.append(reason)
    elif champion_primary is None and champion_version is None and gates.first_version == "hold":
        verdict = "held"
        reasons.append("every gate passed; there is no champion yet and first_version is 'hold': "
                       "a person promotes it with `dlops promote`")  # fmt: skip
    elif champion_primary is None:
        verdict = "promoted"
        reasons.append("every gate passed and there is no comparable champion")
    else:
        assert candidate is not None  # the primary gate passed, so the metric is a number
        tol = gates.promotion_tolerance
        verdict = "rejected" if candidate < champion_primary - tol else "promoted"
        words = "is not worse than" if verdict == "promoted" else "is worse than"
        ours, theirs = _pair(candidate, champion_primary)
        reasons.append(f"{primary} {ours} {words} {who} ({theirs}) beyond tolerance {tol:.3f}")
    return Decision(
        promote=verdict == "promoted",
        checks=checks,
        reasons=reasons,
        champion_version=champion_version,
        primary_metric=primary,
        candidate_primary=candidate,
        champion_primary=champion_primary if comparison is None else comparison.get("champion"),
        gates_passed=gates_passed,
        verdict=verdict,
        comparison=comparison,
    )


def headline(metrics: dict[str, Any], gates: GatesConfig) -> dict[str, Any]:
    """Ten figures under the same keys for every model, so `dvc metrics show` is one narrow table
    (evaluate's `headline.json`, the DVC metric; every figure stays in metrics.json and MLflow): the primary
    metric's name, value and 95% interval, the largest fairness gaps, the train-test gap and diagnosis, the
    membership-inference AUC, and the gates' verdict naming the failed ones. Gates only: the comparison
    with the champion is register's, in MLflow."""
    primary = f"test/{gates.primary_metric}"
    decision = decide(metrics, gates, champion_primary=None)
    failed = [check.name for check in decision.failed]
    return {
        "metric": gates.primary_metric,
        "value": _number(metrics.get(primary)),
        "ci_low": _number(metrics.get(f"{primary}/ci_low")),
        "ci_high": _number(metrics.get(f"{primary}/ci_high")),
        "dp_gap": _number(metrics.get(GATES["max_demographic_parity_difference"][0])),
        "eo_gap": _number(metrics.get(GATES["max_equalized_odds_difference"][0])),
        "overfit_gap": _number(metrics.get(GATES["max_overfit_gap"][0])),
        "diagnosis": metrics.get("overfit/diagnosis"),
        "membership_auc": _number(metrics.get(GATES["max_membership_auc"][0])),
        "gates": "failed: " + ", ".join(failed) if failed else "passed",
    }


def _paired_verdict(comparison: dict[str, Any], gates: GatesConfig, who: str) -> tuple[str, str]:
    """better -> promoted; worse -> rejected; indistinguishable -> kept or promoted, by params."""
    outcome = comparison["verdict"]
    level = f"{100 * gates.promotion_confidence:g}%"
    if comparison["method"] == "mcnemar":
        evidence = (
            f"McNemar on the same {comparison.get('n', '?')} test rows: candidate right where {who} is "
            f"wrong {comparison['b']} times, the reverse {comparison['c']} times, "
            f"p = {comparison['p_value']:.3g}"
        )
    else:
        low, high = _pair(comparison["ci_low"], comparison["ci_high"])
        evidence = (
            f"paired bootstrap of {comparison['metric']} on the same test rows: difference "
            f"{comparison['difference']:+.4f} ({level} CI {low} to {high})"
        )
    if outcome == "better":
        return "promoted", f"better than {who} with {level} confidence: {evidence}"
    if outcome == "worse":
        return "rejected", f"worse than {who} with {level} confidence: {evidence}"
    verdict = "kept" if gates.when_indistinguishable == "keep" else "promoted"
    then = f"{who} stays" if verdict == "kept" else "promoted (when_indistinguishable: promote)"
    return verdict, f"not distinguishable from {who} at {level}: {evidence}; {then}"


def _check(
    name: str, key: str, metrics: dict[str, Any], op: Op, limit: float, absolute: bool, confident: bool
) -> tuple[GateCheck, str]:
    raw = metrics.get(key)
    value = _number(raw)
    if value is None:
        why = "is missing" if raw is None else f"= {raw!r} is not a number"
        return GateCheck(name, None, limit, op, False, key), f"{key} {why}, so gate {name} fails"
    if absolute:
        value = abs(value)
    low, high = _number(metrics.get(f"{key}/ci_low")), _number(metrics.get(f"{key}/ci_high"))
    level = f"{100 * float(metrics.get('bootstrap/confidence') or 0.95):g}%"
    interval = "" if low is None or high is None else f" ({level} CI {low:.3f} to {high:.3f})"
    shown_value, shown_limit = _pair(value, limit)
    shown = f"|{key}|" if absolute else key
    if confident:  # a max gate that fails only when the whole interval lies beyond the limit
        if low is None:
            return GateCheck(name, value, limit, op, False, key), (
                f"{key} has no confidence interval, so gate {name} (fairness_rule: confident) fails"
            )
        passed = low <= limit
        words = (
            "is not confidently above the limit" if passed else f"exceeds with {level} confidence the limit"
        )
        return GateCheck(name, value, limit, op, passed, key), (
            f"{shown} = {shown_value}{interval} {words} {shown_limit}{_where(name, passed)}"
        )
    passed = value >= limit if op == ">=" else value <= limit
    if op == ">=":
        words = "meets the minimum" if passed else "is below the minimum"
    else:
        words = "is within the limit" if passed else "exceeds the limit"
    return GateCheck(
        name, value, limit, op, passed, key
    ), f"{shown} = {shown_value}{interval} {words} {shown_limit}{_where(name, passed)}"


def _where(name: str, passed: bool) -> str:
    """Where a failed gate's limit is set (the model's `gates` key in params.yaml); nothing for a pass."""
    return "" if passed else f" (gates.{name})"


def _pair(a: float, b: float) -> tuple[str, str]:
    """Format two numbers with 3 decimals, or more when 3 would make different numbers look equal."""
    for digits in (3, 6, 12):
        left, right = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if left != right or a == b:
            break
    return left, right


def _number(raw: Any) -> float | None:
    """A float, or None for missing, non-numeric or NaN values (bools are not metrics here)."""
    if raw is None or isinstance(raw, bool | str):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value
