"""Quality gates and the promotion decision: pure functions over a metrics dict, no MLflow.

A candidate may become @champion only when every gate passes and it is not worse than the current
champion beyond `promotion_tolerance`. A metric that is missing or not a number fails its gate: a
gate never passes by default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from dlops.config import GatesConfig

Op = Literal["<=", ">="]

# gate name (the GatesConfig field holding its limit) -> (metrics key, comparison, use |value|)
# A gate whose limit is null in params is not checked (and not listed); `min_primary` is always set.
GATES: dict[str, tuple[str, Op, bool]] = {
    "min_primary": ("test/{primary}", ">=", False),
    "max_demographic_parity_difference": ("fairness/max/demographic_parity_difference", "<=", False),
    "max_equalized_odds_difference": ("fairness/max/equalized_odds_difference", "<=", False),
    "max_class_recall_gap": ("bias/class_recall_gap", "<=", False),
    "max_overfit_gap": ("overfit/primary_gap_train_test", "<=", True),
    "max_reconstruction_gap": ("overfit/reconstruction_gap", "<=", False),
    "min_class_coverage": ("generate/class_coverage", ">=", False),
    "min_memorization_ratio": ("generate/memorization_ratio", ">=", False),
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


class GateFailure(RuntimeError):
    """A candidate failed at least one gate; `.decision` holds every check and reason."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        failed = [r for r, c in zip(decision.reasons, decision.checks, strict=False) if not c.passed]
        super().__init__("quality gates failed: " + "; ".join(failed or decision.reasons))


def decide(
    metrics: dict[str, Any],
    gates: GatesConfig,
    champion_primary: float | None,
    champion_version: str | None = None,
) -> Decision:
    """Check every gate, then (only if all pass) compare the primary metric with the champion's.

    `champion_primary` None means there is no comparable champion: the candidate is promoted when its
    gates pass. `reasons` holds one sentence per gate, in `checks` order, then the comparison.
    """
    primary = f"test/{gates.primary_metric}"
    checks, reasons = [], []
    for name, (template, op, absolute) in GATES.items():
        limit = getattr(gates, name)
        if limit is None:
            continue
        key = template.format(primary=gates.primary_metric)
        check, reason = _check(name, key, metrics.get(key), op, limit, absolute)
        checks.append(check)
        reasons.append(reason)

    candidate = _number(metrics.get(primary))
    gates_passed = all(check.passed for check in checks)
    who = f"champion v{champion_version}" if champion_version else "the champion"
    tol = gates.promotion_tolerance
    if not gates_passed:
        promote = False
        failed = f"{sum(not c.passed for c in checks)} gate(s) failed"
        reasons.append(
            f"not compared with {who}: {failed}" if champion_version else f"not promoted: {failed}"
        )
    elif champion_primary is None:
        promote = True
        reasons.append("every gate passed and there is no comparable champion")
    else:
        assert candidate is not None  # the primary gate passed, so the metric is a number
        promote = not candidate < champion_primary - tol
        verdict = "is not worse than" if promote else "is worse than"
        ours, theirs = _pair(candidate, champion_primary)
        reasons.append(f"{primary} {ours} {verdict} {who} ({theirs}) beyond tolerance {tol:.3f}")
    return Decision(
        promote=promote,
        checks=checks,
        reasons=reasons,
        champion_version=champion_version,
        primary_metric=primary,
        candidate_primary=candidate,
        champion_primary=champion_primary,
        gates_passed=gates_passed,
    )


def _check(name: str, key: str, raw: Any, op: Op, limit: float, absolute: bool) -> tuple[GateCheck, str]:
    value = _number(raw)
    if value is None:
        why = "is missing" if raw is None else f"= {raw!r} is not a number"
        return GateCheck(name, None, limit, op, False, key), f"{key} {why}, so gate {name} fails"
    if absolute:
        value = abs(value)
    passed = value >= limit if op == ">=" else value <= limit
    if op == ">=":
        words = "meets the minimum" if passed else "is below the minimum"
    else:
        words = "is within the limit" if passed else "exceeds the limit"
    shown_value, shown_limit = _pair(value, limit)
    shown = f"|{key}|" if absolute else key
    return GateCheck(name, value, limit, op, passed, key), f"{shown} = {shown_value} {words} {shown_limit}"


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
