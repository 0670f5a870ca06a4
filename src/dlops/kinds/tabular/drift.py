"""Drift of a tabular batch against the reference table: PSI per column (and KS for numeric columns),
label balance and an overall flag (the statistics are `dlops.monitoring.drift`'s)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dlops.evaluation.report import clean
from dlops.monitoring.drift import (
    PSI_THRESHOLD,
    categorical_psi,
    ks,
    label_drift,
    psi,
    summary_markdown,
    table,
)


def _check_columns(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"column(s) {', '.join(map(repr, missing))} missing from the {name} batch")


def table_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    label: str | None,
    psi_threshold: float = PSI_THRESHOLD,
) -> dict[str, Any]:
    """Per-column PSI (and KS for numeric columns), label balance, and an overall drift flag."""
    wanted = [*numeric, *categorical, *([label] if label is not None else [])]
    _check_columns(reference, wanted, "reference")
    _check_columns(current, wanted, "current")
    columns: list[dict[str, Any]] = []
    for kind, names in (("numeric", numeric), ("categorical", categorical)):
        for name in names:
            ref, cur = reference[name], current[name]
            value = psi(ref, cur) if kind == "numeric" else categorical_psi(ref, cur)
            row: dict[str, Any] = {"column": name, "kind": kind, "psi": clean(value)}
            if kind == "numeric":
                statistic, pvalue = ks(ref, cur)
                row.update(ks_statistic=clean(statistic), ks_pvalue=clean(pvalue))
            row.update(
                missing_reference=clean(ref.isna().mean()),
                missing_current=clean(cur.isna().mean()),
                drifted=bool(value >= psi_threshold),
            )
            columns.append(row)
    drifted_columns = [row["column"] for row in columns if row["drifted"]]
    label_report = (
        label_drift(reference[label], current[label], label, psi_threshold) if label is not None else None
    )
    psis = [row["psi"] for row in columns if row["psi"] is not None]
    return {
        "kind": "table",
        "n_reference": len(reference),
        "n_current": len(current),
        "threshold": clean(psi_threshold),
        "columns": columns,
        "label": label_report,
        "max_psi": max(psis) if psis else None,
        "drifted_columns": drifted_columns,
        "drifted": bool(drifted_columns) or bool(label_report and label_report["drifted"]),
    }


def summary(report: dict[str, Any]) -> str:
    """The Markdown summary of a `table_drift` report: one row per column, then the label."""
    header = ["column", "kind", "PSI", "KS stat", "KS p", "missing ref", "missing cur", "drifted"]
    keys = ["column", "kind", "psi", "ks_statistic", "ks_pvalue", "missing_reference", "missing_current"]
    rows = [[row.get(k) for k in keys] + [row["drifted"]] for row in report["columns"]]
    label = report["label"]
    if label is not None:
        rows.append([label["column"], "label", label["psi"], None, None, None, None, label["drifted"]])
    return summary_markdown(report, table(header, rows))
