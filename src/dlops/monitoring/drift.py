"""Data drift between the training reference and a new batch, for a monitor that decides on retraining.

Statistics
----------
- **PSI** (population stability index): ``sum((c_i - r_i) * ln(c_i / r_i))`` over bins, where ``r_i`` and
  ``c_i`` are the shares of the reference and current batch in bin ``i``. Numeric bins are the quantiles
  of the reference (duplicate edges dropped, values outside the reference range fall in the end bins);
  missing values get a bin of their own, and an empty bin counts as a share of ``EPSILON`` (1e-4) so the
  log stays finite. Categorical PSI uses one bin per level over the union of both batches' levels
  (missing is a level too). Usual reading: < 0.1 stable, 0.1-0.2 moderate shift, >= 0.2 significant
  shift (the default threshold here). Two samples of one distribution score about
  ``(bins - 1) * (1/n_ref + 1/n_cur)`` by chance alone, so tiny batches look drifted more easily.
- **KS** (two-sample Kolmogorov-Smirnov, ``scipy.stats.ks_2samp``) on the non-missing values: the
  statistic is the largest gap between the two empirical CDFs (0 = same, 1 = disjoint); a p-value below
  0.05 rejects "same distribution". With thousands of rows tiny, harmless shifts are significant, so the
  drift decision uses PSI and KS is reported as supporting evidence.
- **Label balance**: the share of each class in both batches and the PSI between them (prior shift).

Each kind's report is built from these in its own package (`dlops.kinds.<kind>.drift`: per-column PSI
and KS of a table, token length and out-of-vocabulary rate of texts, brightness and contrast of images).

Reports are plain dicts whose floats go through ``clean`` (6 decimals, None for NaN), so they are
JSON-safe and identical across identical runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from dlops.evaluation.report import clean

EPSILON = 1e-4  # share given to an empty bin
PSI_THRESHOLD = 0.2
_MISSING = "<missing>"


def _as_float(values: Any) -> np.ndarray:
    """A 1-D float array; pandas NA/None become NaN."""
    if isinstance(values, pd.Series | pd.Index):
        return values.astype("float64").to_numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def _psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    ref = ref_counts / ref_counts.sum()
    cur = cur_counts / cur_counts.sum()
    ref = np.where(ref == 0, EPSILON, ref)
    cur = np.where(cur == 0, EPSILON, cur)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _check_nonempty(reference: np.ndarray | pd.Series, current: np.ndarray | pd.Series) -> None:
    if len(reference) == 0 or len(current) == 0:
        raise ValueError("PSI needs at least one value in both the reference and the current batch")


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of a numeric column over quantile bins of the reference."""
    ref, cur = _as_float(reference), _as_float(current)
    _check_nonempty(ref, cur)
    ref_finite = ref[np.isfinite(ref)]
    if ref_finite.size:
        edges = np.unique(np.quantile(ref_finite, np.linspace(0.0, 1.0, bins + 1)))
        inner = edges[1:-1]
    else:
        inner = np.empty(0)

    def counts(x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        idx = np.searchsorted(inner, x[~missing], side="right")  # below/above the range → end bins
        return np.append(np.bincount(idx, minlength=inner.size + 1), missing.sum()).astype(float)

    return _psi_from_counts(counts(ref), counts(cur))


def _levels(values: Any) -> pd.Series:
    series = pd.Series(np.asarray(values, dtype=object).ravel(), dtype=object)
    return series.where(series.notna(), _MISSING).astype(str)


def categorical_psi(reference: Any, current: Any) -> float:
    """Population stability index of a categorical column over the union of levels (missing is a level)."""
    ref, cur = _levels(reference), _levels(current)
    _check_nonempty(ref, cur)
    levels = sorted(set(ref) | set(cur))
    ref_counts = ref.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
    cur_counts = cur.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
    return _psi_from_counts(ref_counts, cur_counts)


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value on non-missing values; NaN, NaN if none."""
    ref, cur = _as_float(reference), _as_float(current)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref.size == 0 or cur.size == 0:
        return float("nan"), float("nan")
    result = stats.ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def _shares(values: pd.Series) -> dict[str, Any]:
    shares = _levels(values).value_counts(normalize=True)
    return {level: clean(shares[level]) for level in sorted(shares.index)}


def label_drift(reference: pd.Series, current: pd.Series, column: str, threshold: float) -> dict[str, Any]:
    """Label balance (prior shift): each class's share in both batches and the PSI between them."""
    label_psi = categorical_psi(reference, current)
    return {
        "column": column,
        "reference": _shares(reference),
        "current": _shares(current),
        "psi": clean(label_psi),
        "drifted": bool(label_psi >= threshold),
    }


def with_label_drift(
    report: dict[str, Any], reference: Any, current: Any, threshold: float
) -> dict[str, Any]:
    """`report` (text or image drift) with the drift of the `label` column added to its verdict."""
    labels = (reference["label"].astype(str), current["label"].astype(str))
    report["label"] = label_drift(*labels, "label", threshold)
    report["drifted"] = bool(report["drifted"] or report["label"]["drifted"])
    return report


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "**yes**" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def summary_markdown(report: dict[str, Any], body: list[str]) -> str:
    """A short Markdown summary of a drift report: its verdict and sizes, then `body` (the statistics
    table the report's task kind draws: kinds/<kind>/drift.py `summary`)."""
    kind = report.get("kind")
    if not isinstance(kind, str):
        raise ValueError(f"a drift report names its kind; got {kind!r}")
    verdict = "**drift detected**" if report["drifted"] else "no drift"
    lines = [
        f"### {kind.capitalize()} drift: {verdict}",
        "",
        f"Reference n={report['n_reference']}, current n={report['n_current']}, "
        f"PSI threshold {cell(report['threshold'])}.",
        "",
    ]
    return "\n".join(lines + body) + "\n"
