"""Point, interval, backtest and per-group errors of multi-step forecasts; numpy only, no torch.

Inputs are N forecast windows x H horizon steps in the original units: `actual` (N, H), NaN where a
step is missing (such entries are not scored anywhere), a forecast of the same shape, and `mase_scale`
(N,), the in-sample mean absolute error of the seasonal-naive forecast on each window's series'
training period. MASE here is the mean over scored entries of |a - f| / scale of the entry's row, so
every scored entry weighs the same. Flat metrics are plain floats rounded to 6 decimals (NaN where
nothing is scored: pass them through `dlops.evaluation.report.clean` before writing JSON); rows meant
for JSON files already hold None instead of NaN.

Intervals are split-conformal (Vovk et al. 2005; Lei et al. 2018) on scaled absolute residuals, one
quantile per horizon step. The group bootstrap resamples whole series (every window of a drawn series
together) within each stratum of series sharing all group labels, with `numpy.random.default_rng(seed)`,
like `dlops.evaluation.uncertainty`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from dlops.evaluation.fairness import attribute_labels
from dlops.evaluation.report import DECIMALS, clean
from dlops.evaluation.uncertainty import percentile_interval

log = logging.getLogger(__name__)


def _r(value: Any) -> float:
    """A plain float rounded to 6 decimals; NaN kept (-0.0 becomes 0.0)."""
    value = float(value)
    return value if math.isnan(value) else round(value, DECIMALS) + 0.0


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _step(h: int) -> str:
    return f"h{h + 1:02d}"


def _ratio(numerator: Any, denominator: Any) -> Any:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(np.shape(numerator), np.nan)
    return np.divide(numerator, denominator, out=out, where=np.asarray(denominator) > 0)


def _mean(values: np.ndarray, axis: int | None = None) -> Any:
    """Mean of the non-NaN values (NaN where there are none), without numpy's empty-slice warning."""
    return _ratio(np.nansum(values, axis=axis), np.sum(~np.isnan(values), axis=axis))


def _check(actual: Any, forecast: Any, scale: Any | None = None) -> tuple[np.ndarray, ...]:
    """(actual, forecast[, scale]) as float64 (N, H), (N, H), (N,); forecasts must be finite where scored."""
    a, f = np.asarray(actual, dtype=np.float64), np.asarray(forecast, dtype=np.float64)
    if a.ndim != 2 or a.shape != f.shape:
        raise ValueError(f"actual and forecast must both be (N, H); got {a.shape} and {f.shape}")
    if not np.isfinite(f[~np.isnan(a)]).all():
        raise ValueError("the forecast is NaN or infinite at a step whose actual value is known")
    if scale is None:
        return a, f
    s = np.asarray(scale, dtype=np.float64)
    if s.shape != (a.shape[0],) or not (s > 0).all() or not np.isfinite(s).all():
        raise ValueError(f"the scale must be ({a.shape[0]},) finite values > 0; got shape {s.shape}")
    return a, f, s


def _errors(actual: Any, forecast: Any, scale: Any) -> tuple[np.ndarray, np.ndarray]:
    """(|a - f|, |a - f| / scale of the row), both (N, H) with NaN at unscored entries."""
    a, f, s = _check(actual, forecast, scale)
    err = np.abs(a - f)
    return err, err / s[:, None]


# ------------------------------------------------------------------------------------- point forecasts
def forecast_metrics(actual: Any, forecast: Any, mase_scale: Any) -> dict[str, float]:
    """`mae`, `rmse`, `smape` (percent, 0..200: mean of 200|a-f| / (|a|+|f|), a term with |a|+|f| = 0
    counting 0), `mase` over every scored entry, and `mae/hNN`, `mase/hNN` per horizon step NN = 01..H."""
    a, f, _ = _check(actual, forecast, mase_scale)
    err, scaled = _errors(a, f, mase_scale)
    denominator = np.abs(a) + np.abs(f)
    ratio = np.divide(200.0 * err, denominator, out=np.zeros(err.shape), where=denominator > 0)
    out = {
        "mae": _r(_mean(err)),
        "rmse": _r(np.sqrt(_mean(err**2))),
        "smape": _r(_mean(np.where(np.isnan(a), np.nan, ratio))),
        "mase": _r(_mean(scaled)),
    }
    for h, (mae, mase) in enumerate(zip(_mean(err, axis=0), _mean(scaled, axis=0), strict=True)):
        out[f"mae/{_step(h)}"], out[f"mase/{_step(h)}"] = _r(mae), _r(mase)
    return out


def reference_metrics(actual: Any, naive: Any, snaive: Any, mase_scale: Any) -> dict[str, float]:
    """`naive/{mase, mae}` and `snaive/{mase, mae}`: the last-value and seasonal-naive references."""
    out = {}
    for name, forecast in (("naive", naive), ("snaive", snaive)):
        m = forecast_metrics(actual, forecast, mase_scale)
        out[f"{name}/mase"], out[f"{name}/mae"] = m["mase"], m["mae"]
    return out


def skill(mase: float) -> float:
    """The primary metric `forecast_skill`: 1 - MASE (0 = as good as the seasonal-naive reference)."""
    return _r(1.0 - mase)


# ------------------------------------------------------------------------------------------- intervals
def conformal_quantiles(val_actual: Any, val_forecast: Any, val_scale: Any, level: float) -> list[float]:
    """Per horizon step h, the ceil((n+1)·level)-th smallest of the n validation scores |a - f| / scale
    (the split-conformal quantile; the largest score when that rank exceeds n). A step without scores
    gets the largest quantile of the other steps; raises ValueError when no step has any."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    _, scores = _errors(val_actual, val_forecast, val_scale)
    quantiles: list[float] = []
    for column in scores.T:
        r = np.sort(column[~np.isnan(column)])
        rank = min(math.ceil((r.size + 1) * level), r.size)
        quantiles.append(float(r[rank - 1]) if r.size else math.nan)
    known = [q for q in quantiles if not math.isnan(q)]
    if not known:
        raise ValueError("no validation residuals to calibrate the prediction intervals on")
    return [_r(max(known) if math.isnan(q) else q) for q in quantiles]


def intervals(forecast: Any, scale: Any, quantiles: Any) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper), each (N, H): forecast ∓ q_h · scale of the row."""
    f = np.asarray(forecast, dtype=np.float64)
    half = np.asarray(scale, dtype=np.float64)[:, None] * np.asarray(quantiles, dtype=np.float64)[None, :]
    return f - half, f + half


def coverage(actual: Any, lower: Any, upper: Any) -> dict[str, float]:
    """`coverage`: share of scored entries with lower <= actual <= upper; `coverage/hNN` per step;
    `interval_width`: mean of upper - lower over the scored entries."""
    a, lo = _check(actual, lower)
    _, hi = _check(a, upper)
    scored = ~np.isnan(a)
    inside = np.where(scored, (lo <= a) & (a <= hi), np.nan)
    out = {"coverage": _r(_mean(inside)), "interval_width": _r(_mean(np.where(scored, hi - lo, np.nan)))}
    for h, value in enumerate(_mean(inside, axis=0)):
        out[f"coverage/{_step(h)}"] = _r(value)
    return out


def coverage_report(actual: Any, lower: Any, upper: Any, level: float) -> dict[str, float]:
    """`forecast/{coverage, coverage_error, interval_width, nominal}` and `forecast/coverage/hNN`;
    coverage_error = |coverage - level| (what gate `max_coverage_error` reads)."""
    out = {f"forecast/{key}": value for key, value in coverage(actual, lower, upper).items()}
    out["forecast/nominal"] = _r(level)
    out["forecast/coverage_error"] = _r(abs(out["forecast/coverage"] - level))
    return out


# -------------------------------------------------------------------------------------------- backtest
def backtest(
    actual: Any, forecast: Any, mase_scale: Any, origin: Any, horizon: int, folds: int
) -> tuple[dict[str, float | int], list[dict[str, Any]]]:
    """Rolling-origin backtest (darts' historical_forecasts with stride=horizon, retrain=False): fold i
    has cutoff test_start + i·horizon, test_start = the smallest origin, and scores the windows whose
    origin equals its cutoff. Returns the flat `backtest/{folds, mase_mean, mase_std, mae_mean, mae_std}`
    (folds: how many had a scored entry; std: population std over them) and one row per scored fold
    {fold, cutoff, mase, mae, windows}."""
    if horizon < 1 or folds < 1:
        raise ValueError(f"need horizon >= 1 and folds >= 1; got {horizon}, {folds}")
    a, f, s = _check(actual, forecast, mase_scale)
    o = np.asarray(origin, dtype=np.int64)
    if o.shape != (a.shape[0],):
        raise ValueError(f"origin must be ({a.shape[0]},); got {o.shape}")
    rows: list[dict[str, Any]] = []
    for i in range(folds if o.size else 0):
        cutoff = int(o.min()) + i * horizon
        take = o == cutoff
        m = forecast_metrics(a[take], f[take], s[take])
        if not math.isnan(m["mase"]):
            rows.append({"fold": i, "cutoff": cutoff, "mase": m["mase"], "mae": m["mae"]})
            rows[-1]["windows"] = int(take.sum())
    flat: dict[str, float | int] = {"backtest/folds": len(rows)}
    for key in ("mase", "mae"):
        values = np.array([row[key] for row in rows])
        flat[f"backtest/{key}_mean"] = _r(values.mean()) if rows else math.nan
        flat[f"backtest/{key}_std"] = _r(values.std()) if rows else math.nan
    return flat, rows


# ------------------------------------------------------------------------------------------ group errors
def group_errors(
    actual: Any,
    forecast: Any,
    scale: Any,
    groups: dict[str, Any],
    *,
    series: Any,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The scaled error (mean |a - f| / the row's `scale`: MASE with the MASE scale, the relative error with
    each series' level) per group of each attribute in `groups` ({attribute: (N,) label, constant
    within a series}).

    Flat: `fairness/<attr>/error_gap` = worst group's error - the mean of the groups' errors (0 with one
    group), `fairness/group_error_gap` = the largest over attributes (absent without attributes) and,
    with bootstrap > 0 replicates, `/ci_low` and `/ci_high` of each: the percentile interval at
    `confidence` over resamples of whole series drawn within each stratum of series sharing all labels.
    Table rows {attribute, group, error, mae, series, windows}, by attribute then group name."""
    err, scaled = _errors(actual, forecast, scale)
    names = np.asarray(series).astype(str)
    if names.shape != (err.shape[0],):
        raise ValueError(f"series must be ({err.shape[0]},); got {names.shape}")
    _, first, inverse = np.unique(names, return_index=True, return_inverse=True)
    size = first.size

    def per_series(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values, minlength=size)

    scaled_sum, err_sum = per_series(np.nansum(scaled, axis=1)), per_series(np.nansum(err, axis=1))
    scored, windows = per_series((~np.isnan(err)).sum(axis=1)), per_series(np.ones(err.shape[0]))
    flat: dict[str, float] = {}
    table: list[dict[str, Any]] = []
    members: list[tuple[str, np.ndarray]] = []  # (key name, (series, group) 0/1 membership) per attribute
    labels = []
    for attr, values in groups.items():
        name, g = attribute_labels(attr, values, err.shape[0])
        labels.append(g[first])
        if not (labels[-1][inverse] == g).all():
            raise ValueError(f"attribute {attr!r} changes within a series; it must label whole series")
        group_names, codes = np.unique(labels[-1], return_inverse=True)
        m = np.eye(group_names.size)[codes]
        members.append((name, m))
        mase, mae = _ratio(scaled_sum @ m, scored @ m), _ratio(err_sum @ m, scored @ m)
        for j, group in enumerate(group_names):
            size_j, windows_j = int(m[:, j].sum()), int(windows @ m[:, j])
            table.append(dict(attribute=attr, group=str(group), error=clean(mase[j]), mae=clean(mae[j])))
            table[-1].update(series=size_j, windows=windows_j)
        if group_names.size < 2:
            log.warning("fairness/%s/error_gap is 0: the attribute has a single group", name)

    def gaps(weights: np.ndarray) -> dict[str, np.ndarray]:
        """(B,) gap of each attribute and the max over them, from (B, series) draw counts."""
        out = {}
        for name, m in members:
            mase = _ratio(weights @ (scaled_sum[:, None] * m), weights @ (scored[:, None] * m))
            out[f"fairness/{name}/error_gap"] = np.fmax.reduce(mase, axis=1) - _mean(mase, axis=1)
        if out:
            out["fairness/group_error_gap"] = np.fmax.reduce(np.stack(list(out.values())), axis=0)
        return out

    point = gaps(np.ones((1, size)))
    flat.update({key: _r(value[0]) for key, value in point.items()})
    if bootstrap > 0 and members:  # same code on resamples
        replicates = gaps(_stratified_draws(labels, bootstrap, seed))
        for key, values in replicates.items():
            low, high = percentile_interval(values, confidence)  # None: no defined replicate
            flat[f"{key}/ci_low"], flat[f"{key}/ci_high"] = _r(_nan(low)), _r(_nan(high))
    return flat, table


def _stratified_draws(labels: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, S) how often each of S series is drawn when every stratum (series with the same labels
    in every attribute) of m series draws m of its series with replacement; strata in sorted order."""
    strata = np.unique(
        np.array(["\x1f".join(row) for row in zip(*labels, strict=True)]), return_inverse=True
    )[1]
    size = strata.size
    rng = np.random.default_rng(seed)
    offsets = np.arange(n_boot, dtype=np.int64)[:, None] * size
    counts = np.zeros(n_boot * size)
    for k in range(int(strata.max()) + 1):
        stratum = np.flatnonzero(strata == k)
        draws = stratum[rng.integers(0, stratum.size, size=(n_boot, stratum.size))]
        counts += np.bincount((draws + offsets).ravel(), minlength=n_boot * size)
    return counts.reshape(n_boot, size)
