"""The PII screen (`dlops.privacy.pii`) as rows of a validation summary, beside the suite's.

One `pii_screen` row per screened column and kind found (failed, at the task's `validate.pii.severity`,
so `raise_on_failure` stops on a critical one), and one passing row per clean column, so a report
shows the screen ran. The summary also lists the findings under `pii` (the model card reads it);
no row, list or message holds a value that is not masked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from dlops.data.validation import recounted
from dlops.params import PiiScreen
from dlops.privacy.pii import Detector, Finding, detectors, found_in, mask, screen

EXPECTATION = "pii_screen"
SHOWN = 3  # masked examples per finding
EXCERPT = 120  # characters of a masked example around its first identifier
WHY = (
    "direct identifiers (e-mail, phone, card, IBAN, IP, declared national IDs) would reach the splits, "
    "the model and its reports: remove them upstream, or declare the column under columns.identifiers "
    "(tables) to pseudonymise or drop it"
)


def string_columns(frame: pd.DataFrame, skip: Iterable[str] = ()) -> list[str]:
    """The columns of `frame` that can hold text (object, string or categorical dtype), but for `skip`
    and the bookkeeping columns (`__record`, `__split`)."""
    skipped = set(skip)
    return [
        str(c)
        for c in frame.columns
        if str(c) not in skipped
        and not str(c).startswith("__")
        and (
            pd.api.types.is_object_dtype(frame[c])
            or pd.api.types.is_string_dtype(frame[c])
            or isinstance(frame[c].dtype, pd.CategoricalDtype)
        )
    ]


def with_pii_screen(
    summary: dict[str, Any], frame: pd.DataFrame, columns: list[str], cfg: PiiScreen
) -> dict[str, Any]:
    """The summary with the screen's rows (recounted) and `pii`: `[{column, kind, rows, share}]` (empty
    when clean); unchanged when `severity` is off."""
    if cfg.severity == "off":
        return summary
    found = detectors(cfg.national_ids)
    findings = screen(frame, columns, found)
    flagged = {f.column for f in findings}
    rows = [_finding_row(f, frame[f.column], cfg.severity, found) for f in findings]
    rows += [_clean_row(column, cfg.severity) for column in columns if column not in flagged]
    rows.sort(key=lambda row: (row["column"], row["kwargs"].get("kind", "")))
    listed = [
        {"column": f.column, "kind": f.kind, "rows": f.rows, "share": round(f.share, 6)} for f in findings
    ]
    return recounted({**summary, "results": [*summary["results"], *rows], "pii": listed})


def _finding_row(
    finding: Finding, values: pd.Series, severity: str, found: tuple[Detector, ...]
) -> dict[str, Any]:
    share = round(finding.share, 6)
    return {
        "expectation": EXPECTATION,
        "column": finding.column,
        "severity": severity,
        "success": False,
        "observed": {"kind": finding.kind, "rows": finding.rows, "share": share},
        "unexpected_examples": masked_examples(values, finding.kind, found),
        "unexpected_percent": round(100 * finding.share, 4),
        "why": WHY,
        "kwargs": {"kind": finding.kind},
        "detail": finding.describe(),
    }


def _clean_row(column: str, severity: str) -> dict[str, Any]:
    return {
        "expectation": EXPECTATION,
        "column": column,
        "severity": severity,
        "success": True,
        "observed": {"kind": None, "rows": 0, "share": 0.0},
        "unexpected_examples": [],
        "unexpected_percent": 0.0,
        "why": WHY,
        "kwargs": {},
        "detail": "ok",
    }


def masked_examples(values: pd.Series, kind: str, found: tuple[Detector, ...]) -> list[str]:
    """Up to three distinct values holding a `kind`, masked, each cut to the text around its first mark."""
    shown: list[str] = []
    for value in values.dropna().unique():
        if isinstance(value, str) and kind in found_in(value, found):
            excerpt = _excerpt(mask(value, found), f"<{kind}>")
            if excerpt not in shown:
                shown.append(excerpt)
            if len(shown) == SHOWN:
                break
    return shown


def _excerpt(text: str, mark: str) -> str:
    if len(text) <= EXCERPT:
        return text
    start = max(0, text.find(mark) - EXCERPT // 3)
    cut = text[start : start + EXCERPT]
    return ("..." if start else "") + cut + ("..." if start + EXCERPT < len(text) else "")
