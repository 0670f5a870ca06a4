"""Drift of a series batch against the recent training data: per series, how far the mean step-to-step
movement (the batch continuing from the last reference value) moved, in units of the reference's
movement spread, and the PSI of all standardised movements pooled. Movements, not levels: a trending
series is not drift, a level shift or a changed dynamic is. A series whose mean movement moved by more
than `MEAN_SHIFT` spreads, or a pooled PSI at or above the threshold, is drift."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dlops.evaluation.report import clean
from dlops.monitoring.drift import PSI_THRESHOLD, psi, summary_markdown, table

MEAN_SHIFT = 1.0  # |mean(current) - mean(reference)| / std(reference) called drift
SHOWN = 10


def series_drift(
    task_cfg: Any, reference: pd.DataFrame, current: pd.DataFrame, threshold: float = PSI_THRESHOLD
) -> dict[str, Any]:
    """The drift report: per series, the change in its step-to-step movement against the reference's
    recent window; pooled, the PSI of those standardised movements."""
    recent = task_cfg.preprocess.lookback * 4  # the reference's recent window per series
    ref = reference.dropna(subset=["value"]).sort_values(["series", "timestamp"], kind="stable")
    ref = ref.groupby("series", sort=True).tail(recent)
    ref_moves = ref.groupby("series")["value"].diff()
    stats = ref_moves.groupby(ref["series"]).agg(["mean", "std"])
    stats["std"] = stats["std"].where(stats["std"] > 1e-8, 1.0)
    last = ref.groupby("series")["value"].last()
    cur = current.dropna(subset=["value"]).sort_values(["series", "timestamp"], kind="stable")
    shared = cur[cur["series"].isin(stats.index)]
    # each batch series continues from its last reference value: a jump at the seam is a movement too
    previous = shared.groupby("series")["value"].shift(1).fillna(shared["series"].map(last))
    moves = shared["value"] - previous
    standard = (moves - shared["series"].map(stats["mean"])) / shared["series"].map(stats["std"])
    ref_standard = (ref_moves - ref["series"].map(stats["mean"])) / ref["series"].map(stats["std"])
    ref_standard = ref_standard.dropna()
    pooled = psi(ref_standard.to_numpy(), standard.to_numpy()) if len(standard) else float("nan")
    shifts = standard.groupby(shared["series"]).mean().abs().sort_values(ascending=False, kind="stable")
    rows = [{"series": str(s), "mean_shift": clean(v)} for s, v in shifts.items()]
    moved = [row["series"] for row in rows if (row["mean_shift"] or 0.0) > MEAN_SHIFT]
    return {
        "kind": "timeseries",
        "n_reference": len(ref),
        "n_current": len(cur),
        "threshold": clean(threshold),
        "value_psi": clean(pooled),
        "series": rows,
        "series_shifted": moved,
        "new_series": sorted(str(s) for s in set(cur["series"]) - set(stats.index)),
        "drifted": bool((np.isfinite(pooled) and pooled >= threshold) or moved),
    }


def summary(report: dict[str, Any]) -> str:
    """The Markdown summary of a `series_drift` report: pooled PSI and the largest mean shifts."""
    rows = [[r["series"], r["mean_shift"]] for r in report["series"][:SHOWN]]
    body = table(["series", "mean movement shift (reference std)"], rows)
    notes = [f"Pooled PSI of standardised step-to-step movements {report['value_psi']}."]
    if report["new_series"]:
        notes.append(f"New series: {', '.join(report['new_series'][:SHOWN])}.")
    return summary_markdown(report, [*body, "", *notes])
