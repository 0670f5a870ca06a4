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
- **Text**: PSI of the token count per text (lowercased whitespace tokens) and the out-of-vocabulary
  rate (share of tokens not in the training vocabulary); a rise of more than 0.1 absolute in OOV rate
  counts as drift.
- **Images**: PSI of the per-image mean pixel value (brightness) and per-image standard deviation
  (contrast), pixels scaled to [0, 1]; the share of blank images (constant, std == 0) is reported.

Reports are plain dicts whose floats go through ``clean`` (6 decimals, None for NaN), so they are
JSON-safe and identical across identical runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from dlops.evaluation.report import clean

EPSILON = 1e-4  # share given to an empty bin
PSI_THRESHOLD = 0.2
OOV_RISE = 0.1  # absolute rise in out-of-vocabulary rate called drift
_MISSING = "<missing>"
_CHUNK = 256  # images per chunk when computing per-image statistics


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


def _tokens(text: str) -> list[str]:
    return text.lower().split()


def _oov_rate(token_lists: list[list[str]], vocabulary: set[str]) -> float:
    total = sum(len(tokens) for tokens in token_lists)
    unknown = sum(token not in vocabulary for tokens in token_lists for token in tokens)
    return unknown / total if total else float("nan")


def text_drift(
    reference_texts: Iterable[str],
    current_texts: Iterable[str],
    vocabulary: set[str],
    threshold: float = PSI_THRESHOLD,
) -> dict[str, Any]:
    """Token-length PSI and out-of-vocabulary rates of two batches of texts."""
    ref_tokens = [_tokens(t) for t in reference_texts]
    cur_tokens = [_tokens(t) for t in current_texts]
    ref_lengths = np.array([len(t) for t in ref_tokens], dtype=float)
    cur_lengths = np.array([len(t) for t in cur_tokens], dtype=float)
    length_psi = psi(ref_lengths, cur_lengths)
    vocab = {word.lower() for word in vocabulary}
    oov_ref, oov_cur = _oov_rate(ref_tokens, vocab), _oov_rate(cur_tokens, vocab)
    oov_rise = oov_cur - oov_ref  # NaN when a batch has no tokens: never drift on its own
    return {
        "kind": "text",
        "n_reference": len(ref_tokens),
        "n_current": len(cur_tokens),
        "threshold": clean(threshold),
        "length_psi": clean(length_psi),
        "mean_length_reference": clean(ref_lengths.mean()),
        "mean_length_current": clean(cur_lengths.mean()),
        "oov_rate_reference": clean(oov_ref),
        "oov_rate_current": clean(oov_cur),
        "oov_rise": clean(oov_rise),
        "drifted": bool(length_psi >= threshold or oov_rise > OOV_RISE),
    }


def _image_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image mean and std of pixels scaled to [0, 1], and whether each image is blank (constant)."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {images.shape}")
    scale = 255.0 if np.issubdtype(images.dtype, np.integer) else 1.0
    means, stds, blank = [], [], []
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].reshape(min(_CHUNK, len(images) - start), -1)
        pixels = chunk.astype(np.float64) / scale
        means.append(pixels.mean(axis=1))
        stds.append(pixels.std(axis=1))
        blank.append(chunk.max(axis=1) == chunk.min(axis=1))  # exact, unlike a float std
    if not means:
        raise ValueError("image_drift needs at least one image in both batches")
    return np.concatenate(means), np.concatenate(stds), np.concatenate(blank)


def image_drift(
    reference: np.ndarray, current: np.ndarray, threshold: float = PSI_THRESHOLD
) -> dict[str, Any]:
    """PSI of per-image brightness (mean) and contrast (std), plus the share of blank images."""
    ref_mean, ref_std, ref_blank = _image_stats(np.asarray(reference))
    cur_mean, cur_std, cur_blank = _image_stats(np.asarray(current))
    mean_psi, std_psi = psi(ref_mean, cur_mean), psi(ref_std, cur_std)
    return {
        "kind": "image",
        "n_reference": len(ref_mean),
        "n_current": len(cur_mean),
        "threshold": clean(threshold),
        "mean_psi": clean(mean_psi),
        "std_psi": clean(std_psi),
        "mean_brightness_reference": clean(ref_mean.mean()),
        "mean_brightness_current": clean(cur_mean.mean()),
        "mean_contrast_reference": clean(ref_std.mean()),
        "mean_contrast_current": clean(cur_std.mean()),
        "blank_share_reference": clean(ref_blank.mean()),
        "blank_share_current": clean(cur_blank.mean()),
        "drifted": bool(mean_psi >= threshold or std_psi >= threshold),
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "**yes**" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def summary_markdown(report: dict[str, Any]) -> str:
    """A short Markdown summary of a `table_drift`, `text_drift` or `image_drift` report."""
    kind = report.get("kind")
    if kind not in ("table", "text", "image"):
        raise ValueError(f"unknown drift report kind {kind!r}")
    verdict = "**drift detected**" if report["drifted"] else "no drift"
    lines = [
        f"### {str(kind).capitalize()} drift: {verdict}",
        "",
        f"Reference n={report['n_reference']}, current n={report['n_current']}, "
        f"PSI threshold {_cell(report['threshold'])}.",
        "",
    ]
    if kind == "table":
        header = ["column", "kind", "PSI", "KS stat", "KS p", "missing ref", "missing cur", "drifted"]
        keys = ["column", "kind", "psi", "ks_statistic", "ks_pvalue", "missing_reference", "missing_current"]
        rows = [[row.get(k) for k in keys] + [row["drifted"]] for row in report["columns"]]
        label = report["label"]
        if label is not None:
            rows.append([label["column"], "label", label["psi"], None, None, None, None, label["drifted"]])
        lines += _table(header, rows)
    elif kind == "text":
        lines += _table(
            ["metric", "reference", "current"],
            [
                ["mean tokens per text", report["mean_length_reference"], report["mean_length_current"]],
                ["out-of-vocabulary rate", report["oov_rate_reference"], report["oov_rate_current"]],
            ],
        )
        lines += ["", f"Token-length PSI {_cell(report['length_psi'])}."]
    else:
        lines += _table(
            ["metric", "reference", "current"],
            [
                ["mean brightness", report["mean_brightness_reference"], report["mean_brightness_current"]],
                ["mean contrast (std)", report["mean_contrast_reference"], report["mean_contrast_current"]],
                ["blank share", report["blank_share_reference"], report["blank_share_current"]],
            ],
        )
        lines += ["", f"Brightness PSI {_cell(report['mean_psi'])}, contrast PSI {_cell(report['std_psi'])}."]
    return "\n".join(lines) + "\n"
