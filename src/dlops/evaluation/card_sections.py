"""The model card's content, shared by its two forms (evaluation/card.py renders them): the sections
built from the card dict, as tables, text, bullets and figures, and how the compact form drops parts.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

NONE_SHOWN = "—"
CI_HEADER = "95% CI"
FAIRNESS_ROWS_KEPT = 8
FAIRNESS_ROWS_LAST = 4  # before any section is dropped (an intersection of attributes has many groups)
TOP_FEATURES = 10
TOO_SMALL = "too small to measure"
HEADINGS = {  # section key -> heading, in the order both forms show them
    "summary": "Summary",
    "lineage": "Lineage",
    "metrics": "Metrics",
    "gates": "Gates",
    "comparison": "Champion comparison",
    "mitigation": "Mitigation",
    "fairness_gaps": "Fairness gaps",
    "fairness": "Fairness by group",
    "overfitting": "Overfitting",
    "privacy": "Privacy",
    "importance": "Feature importance",
    "validation": "Validation",
    "params": "Params",
    "decision": "Decision",
    "figures": "Figures",
}
# dropped one at a time, after figures / fairness rows / params / passing validation rows, when still over
LAST_RESORT_DROPS = (
    "privacy",  # a gated ε or membership AUC also stays in the Gates table; the full card keeps it
    "importance",
    "validation",
    "overfitting",
    "fairness",
    "lineage",
    "summary",
    "mitigation",
    "fairness_gaps",
    "comparison",
    "metrics",
)
COLUMN_LABELS = {
    "tpr": "TPR",
    "fpr": "FPR",
    "ci_low": CI_HEADER,
    "success": "result",
    "name": "metric",
}


# no fetches, except the data: images this file carries; srcdoc frames inherit the policy (frame-src is
# left unset so that the srcdoc frames themselves are never blocked)
@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Subheading:
    text: str


@dataclass(frozen=True)
class Figures:
    paths: tuple[Path, ...]


Block = Table | Text | Bullets | Subheading | Figures


@dataclass(frozen=True)
class Section:
    key: str
    heading: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Compaction:
    """What the Markdown leaves out to fit; the default leaves out nothing (the HTML always uses it)."""

    dropped: frozenset[str] = frozenset()
    fairness_rows: int | None = None
    validation_failures_only: bool = False


SectionBuilder = Callable[[Any, Compaction], list[Block]]


# ---------------------------------------------------------------- formatting


def format_value(value: Any) -> str:
    """None -> "—"; numbers with at most 4 decimals (4 significant digits when tiny); anything else str."""
    if value is None:
        return NONE_SHOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _format_float(float(value))
    return str(value)


def _format_float(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if 1e-4 <= abs(value) < 1e15:
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return f"{value:.4g}"


def _format_interval(row: Mapping[str, Any]) -> str:
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None and high is None:
        return NONE_SHOWN
    return f"[{format_value(low)}, {format_value(high)}]"


def _pass_mark(passed: Any) -> str:
    if passed is None:
        return NONE_SHOWN
    return "✅ pass" if passed else "❌ fail"


def _column_label(key: str) -> str:
    return COLUMN_LABELS.get(key, key.replace("_", " "))


def _cell(key: str, row: Mapping[str, Any]) -> str:
    if key == "ci_low":
        return _format_interval(row)
    if key in ("success", "passed"):
        return _pass_mark(row.get(key))
    if key == "proxy":
        return "⚠ proxy" if row.get(key) else ""
    return format_value(row.get(key))


# ---------------------------------------------------------------- sections (shared by both forms)


def require_title_and_decision(card: Mapping[str, Any]) -> None:
    missing = [key for key in ("title", "decision") if not card.get(key)]
    if missing:
        raise ValueError(f"model card needs {' and '.join(missing)}")
    if not isinstance(card["decision"], Mapping):
        raise ValueError("model card decision must be a mapping with a verdict and reasons")


def compactions() -> Iterator[Compaction]:
    """The Markdown's ever smaller variants: full, then dropping parts least important first."""
    step = Compaction()
    yield step
    step = replace(step, dropped=frozenset({"figures"}))
    yield step
    step = replace(step, fairness_rows=FAIRNESS_ROWS_KEPT)
    yield step
    step = replace(step, dropped=step.dropped | {"params"})
    yield step
    step = replace(step, validation_failures_only=True)
    yield step
    step = replace(step, fairness_rows=FAIRNESS_ROWS_LAST)
    yield step
    for key in LAST_RESORT_DROPS:
        step = replace(step, dropped=step.dropped | {key})
        yield step


def build_sections(card: Mapping[str, Any], compaction: Compaction) -> list[Section]:
    builders: dict[str, SectionBuilder] = {
        "summary": _key_value_blocks,
        "lineage": _key_value_blocks,
        "metrics": _metric_blocks,
        "gates": _gate_blocks,
        "comparison": _key_value_blocks,
        "mitigation": _mitigation_blocks,
        "fairness_gaps": _fairness_gap_blocks,
        "fairness": _fairness_group_blocks,
        "overfitting": _key_value_blocks,
        "privacy": _privacy_blocks,
        "importance": _importance_blocks,
        "validation": _validation_blocks,
        "params": _key_value_blocks,
        "decision": _decision_blocks,
        "figures": _figure_blocks,
    }
    sections = []
    for key, heading in HEADINGS.items():
        value = card.get(key)
        if not value or key in compaction.dropped:
            continue
        sections.append(Section(key, heading, tuple(builders[key](value, compaction))))
    return sections


def _key_value_blocks(pairs: Mapping[str, Any], compaction: Compaction) -> list[Block]:
    return [_key_value_table(pairs)] if pairs else []


def _key_value_table(pairs: Mapping[str, Any]) -> Table:
    """Two columns; a ci_low/ci_high pair becomes one "95% CI" row."""
    rows: list[tuple[str, str]] = []
    for key, value in pairs.items():
        if key == "ci_high" and "ci_low" in pairs:
            continue
        if key in ("ci_low", "ci_high"):
            rows.append((CI_HEADER, _format_interval(pairs)))
        else:
            rows.append((str(key), format_value(value)))
    return Table(("field", "value"), tuple(rows))


def _records_table(records: Sequence[Mapping[str, Any]], leading: Sequence[str]) -> Table:
    """One row per record; the `leading` columns first, then every other key in order of appearance."""
    columns = [key for key in leading if any(key in record for record in records)]
    for record in records:
        columns.extend(str(key) for key in record if key not in columns)
    columns = [key for key in columns if not (key == "ci_high" and "ci_low" in columns)]
    rows = tuple(tuple(_cell(key, record) for key in columns) for record in records)
    return Table(tuple(_column_label(key) for key in columns), rows)


def _metric_blocks(metrics: Sequence[Mapping[str, Any]], compaction: Compaction) -> list[Block]:
    return [_records_table(metrics, ("name", "value", "ci_low"))] if metrics else []


def _gate_blocks(gates: Sequence[Mapping[str, Any]], compaction: Compaction) -> list[Block]:
    rows = tuple(
        (
            str(gate.get("name", NONE_SHOWN)),
            format_value(gate.get("value")),
            _gate_limit(gate),
            _pass_mark(gate.get("passed")),
        )
        for gate in gates
    )
    return [Table(("gate", "value", "limit", "verdict"), rows)] if rows else []


def _gate_limit(gate: Mapping[str, Any]) -> str:
    limit = format_value(gate.get("limit"))
    return f"{gate['op']} {limit}" if gate.get("op") else limit


def _mitigation_blocks(mitigation: Mapping[str, Any], compaction: Compaction) -> list[Block]:
    setup = {key: value for key, value in mitigation.items() if key not in ("rows", "accuracy_cost")}
    blocks: list[Block] = []
    if setup:
        blocks.append(Text("; ".join(f"{key}: {format_value(value)}" for key, value in setup.items())))
    if mitigation.get("rows"):
        blocks.append(_records_table(mitigation["rows"], ("variant",)))
    if "accuracy_cost" in mitigation:
        blocks.append(Text(f"accuracy cost: {format_value(mitigation['accuracy_cost'])}"))
    return blocks


def _fairness_gap_blocks(gaps: Sequence[Mapping[str, Any]], compaction: Compaction) -> list[Block]:
    return [_records_table(gaps, ("attribute", "metric", "value", "ci_low"))] if gaps else []


def _fairness_group_blocks(
    fairness: Mapping[str, Sequence[Mapping[str, Any]]], compaction: Compaction
) -> list[Block]:
    blocks: list[Block] = []
    for attribute, groups in fairness.items():
        shown = list(groups) if compaction.fairness_rows is None else list(groups)[: compaction.fairness_rows]
        blocks += [Subheading(str(attribute)), _group_table(shown)]
        hidden = len(groups) - len(shown)
        if hidden:
            blocks.append(Text(f"… {hidden} more groups in the full card"))
    return blocks


def _group_table(groups: Sequence[Mapping[str, Any]]) -> Table:
    """Per-group rates; a group flagged measurable=false shows "too small to measure" for its rates."""
    columns = ["group", "count"]
    for group in groups:
        columns.extend(str(key) for key in group if key not in columns and key != "measurable")
    rows = []
    for group in groups:
        cells = [_cell(key, group) for key in columns]
        if group.get("measurable") is False and len(cells) > 2:
            cells[2:] = [TOO_SMALL] + [NONE_SHOWN] * (len(cells) - 3)
        rows.append(tuple(cells))
    return Table(tuple(_column_label(key) for key in columns), tuple(rows))


def _importance_blocks(importance: Sequence[Mapping[str, Any]], compaction: Compaction) -> list[Block]:
    ranked = sorted(importance, key=_importance_rank)
    top = ranked[:TOP_FEATURES]
    rows = tuple(
        (
            str(row.get("feature", NONE_SHOWN)),
            format_value(row.get("importance_mean")),
            format_value(row.get("importance_std")),
            _cell("proxy", row),
        )
        for row in top
    )
    blocks: list[Block] = [Table(("feature", "importance", "std", "proxy"), rows)] if rows else []
    if len(ranked) > len(top):
        blocks.append(Text(f"top {len(top)} of {len(ranked)} features"))
    return blocks


def _importance_rank(row: Mapping[str, Any]) -> float:
    mean = row.get("importance_mean")
    if isinstance(mean, numbers.Real) and math.isfinite(float(mean)):
        return -float(mean)
    return math.inf


def _privacy_blocks(privacy: Mapping[str, Any], compaction: Compaction) -> list[Block]:
    """DP-SGD's (ε, δ) or its absence, the membership audit, memorisation, the PII screen, identifiers."""
    blocks: list[Block] = [Text(_dp_line(privacy.get("differential_privacy")))]
    attacks = privacy.get("membership") or []
    if attacks:
        rows = tuple(
            (str(a.get("attack")), format_value(a.get("auc")), _format_interval(a),
             format_value(a.get("tpr_at_1pct_fpr")))
            for a in attacks
        )  # fmt: skip
        blocks.append(Table(("membership attack", "AUC", CI_HEADER, "TPR at 1% FPR"), rows))
        pairs = format_value(privacy.get("membership_pairs"))
        blocks.append(Text(f"{pairs} training rows against as many test rows; AUC 0.5 = chance"))
    if privacy.get("memorization_ratio") is not None:
        ratio = format_value(privacy["memorization_ratio"])
        blocks.append(
            Text(f"memorisation ratio of samples: {ratio} (1 = no closer to training than held-out)")
        )
    if "pii" in privacy:
        blocks += _pii_blocks(privacy["pii"], privacy.get("pii_screened_columns"))
    identifiers = privacy.get("identifiers") or {}
    if identifiers:
        blocks.append(Text("identifiers: " + "; ".join(f"{col} {how}" for col, how in identifiers.items())))
    return blocks


def _dp_line(dp: Mapping[str, Any] | None) -> str:
    if not dp:
        return "not trained with differential privacy"
    epsilon, delta = format_value(dp.get("epsilon")), format_value(dp.get("delta"))
    noise, clip = format_value(dp.get("noise_multiplier")), format_value(dp.get("max_grad_norm"))
    return f"ε = {epsilon} at δ = {delta} (DP-SGD, noise σ = {noise}, clip C = {clip})"


def _pii_blocks(findings: Sequence[Mapping[str, Any]], screened: int | None) -> list[Block]:
    where = f" in {screened} screened columns" if screened else ""
    if not findings:
        return [Text(f"PII screen: no direct identifiers found{where}")]
    items = tuple(
        f"{f.get('column')}: {f.get('kind')} in {format_value(f.get('rows'))} rows "
        f"({100 * float(f.get('share') or 0):.1f}%)"
        for f in findings
    )
    return [Text(f"PII screen: direct identifiers found{where} (values masked)"), Bullets(items)]


def _validation_blocks(validation: Mapping[str, Any], compaction: Compaction) -> list[Block]:
    overview = {key: value for key, value in validation.items() if key != "rows"}
    blocks: list[Block] = [_key_value_table(overview)] if overview else []
    rows = list(validation.get("rows") or [])
    if compaction.validation_failures_only:
        failures = [row for row in rows if not row.get("success")]
        if len(failures) < len(rows):
            blocks.append(Text(f"{len(rows) - len(failures)} passing expectations in the full card"))
        rows = failures
    if rows:
        blocks.append(_records_table(rows, ("expectation", "column", "severity", "success")))
    return blocks


def _decision_blocks(decision: Mapping[str, Any], compaction: Compaction) -> list[Block]:
    facts = {key: value for key, value in decision.items() if key != "reasons"}
    blocks: list[Block] = [_key_value_table(facts)] if facts else []
    reasons = tuple(str(reason) for reason in decision.get("reasons") or ())
    if reasons:
        blocks.append(Bullets(reasons))
    return blocks


def _figure_blocks(figures: Iterable[Path | str], compaction: Compaction) -> list[Block]:
    paths = tuple(Path(figure) for figure in figures)
    return [Figures(paths)] if paths else []


def verdict_and_first_reason(decision: Mapping[str, Any]) -> tuple[str, str | None]:
    reasons = list(decision.get("reasons") or ())
    return format_value(decision.get("verdict")), (str(reasons[0]) if reasons else None)
