"""Model-agnostic interpretation of tabular classifiers, on raw rows.

Everything here sees the model only through `predict_proba(frame) -> (N, K) probabilities`, where
`frame` is a DataFrame of the original columns (numeric and categorical, missing values allowed), so
it works for any pipeline that does its own preprocessing. Labels `y` are class indices 0..K-1 (the
column order of predict_proba); the positive class of a binary model is index 1.

- Permutation importance: scikit-learn's, scored on argmax(predict_proba).
- Proxy table: how strongly each model input predicts each sensitive attribute, so that a model that
  never sees (say) sex can still be caught using a feature that encodes it. Categorical inputs use the
  bias-corrected Cramér's V (Bergsma 2013): the plain V of an independent 100-level feature over 1000
  rows is about 0.3 by chance alone, which would cross the threshold. Numeric inputs use the
  correlation ratio eta (share of the feature's variance explained by the attribute's groups, square
  root). Missing values are dropped pairwise.
- Partial dependence: the mean predicted probability with one feature set to each grid value in every
  row. Written here rather than with `sklearn.inspection.partial_dependence`, which rejects integer
  columns and, given our own grid, would only do the same loop.

Figures follow `dlops.evaluation.plots`: a private Agg canvas under the default style, saved without
the "Software" tag, so identical inputs give identical bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlops.evaluation.plots import png_figure
from dlops.evaluation.report import clean, unique_key_parts
from dlops.files import write_json

if TYPE_CHECKING:
    pass

PredictProba = Callable[[pd.DataFrame], np.ndarray]

PROXY_THRESHOLD = 0.3
METRICS = ("balanced_accuracy", "accuracy")
PROXY_LABEL = "proxy of a sensitive attribute"
QUANTILES = (0.05, 0.95)


# ------------------------------------------------------------------------------------------ helpers
def _subsample(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted row positions: all of them, or `max_rows` drawn without replacement with `seed`."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def _rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    return frame.iloc[positions].reset_index(drop=True)


def is_categorical(series: pd.Series) -> bool:
    """True for object, string, category and bool columns; numeric columns are treated as continuous."""
    return pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series)


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _proba(predict_proba: PredictProba, frame: pd.DataFrame) -> np.ndarray:
    proba = np.asarray(predict_proba(frame), dtype=float)
    if proba.ndim != 2 or proba.shape[0] != len(frame):
        raise ValueError(f"predict_proba must return shape ({len(frame)}, K), got {proba.shape}")
    return proba


# ------------------------------------------------------------------------------------------ importance
class _ProbaModel:
    """The least scikit-learn's permutation_importance accepts: an object with `fit` (never called)."""

    def __init__(self, predict_proba: PredictProba) -> None:
        self.proba_fn = predict_proba

    def fit(self, X: pd.DataFrame, y: np.ndarray | None = None) -> _ProbaModel:
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return _proba(self.proba_fn, X).argmax(axis=1)


def _scorer(metric: str) -> Callable[[_ProbaModel, pd.DataFrame, np.ndarray], float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    score = balanced_accuracy_score if metric == "balanced_accuracy" else accuracy_score

    def scoring(model: _ProbaModel, X: pd.DataFrame, y: np.ndarray) -> float:
        return float(score(y, model.predict(X)))

    return scoring


def permutation_importance(
    predict_proba: PredictProba,
    frame: pd.DataFrame,
    y: np.ndarray,
    metric: str = "balanced_accuracy",
    n_repeats: int = 5,
    seed: int = 0,
    max_rows: int = 2000,
) -> pd.DataFrame:
    """Drop in `metric` when each column is shuffled: columns feature, importance_mean, importance_std.

    Sorted by importance_mean descending, ties by feature name. Rows beyond `max_rows` are subsampled
    with `seed` first; the shuffles use `seed` too, so the table is deterministic.
    """
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    labels = np.asarray(y).ravel()
    if labels.size != len(frame):
        raise ValueError(f"y has {labels.size} rows, frame has {len(frame)}")
    keep = _subsample(len(frame), max_rows, seed)
    result = sk_permutation_importance(
        _ProbaModel(predict_proba),
        _rows(frame, keep),
        labels[keep],
        scoring=_scorer(metric),
        n_repeats=n_repeats,
        random_state=seed,
    )
    table = pd.DataFrame(
        {
            "feature": [str(c) for c in frame.columns],
            "importance_mean": result.importances_mean.astype(float),
            "importance_std": result.importances_std.astype(float),
        }
    )
    return table.sort_values(["importance_mean", "feature"], ascending=[False, True]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ proxies
def cramers_v(x: pd.Series, groups: pd.Series) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013) of two aligned categorical series without missing values.

    0.0 when either side has a single level.
    """
    from scipy.stats import chi2_contingency

    table = pd.crosstab(x.astype(str).to_numpy(), groups.astype(str).to_numpy()).to_numpy()
    n = int(table.sum())
    r, k = table.shape
    if n < 2 or min(r, k) < 2:
        return 0.0
    chi2 = float(chi2_contingency(table, correction=False)[0])
    phi2 = max(0.0, chi2 / n - (r - 1) * (k - 1) / (n - 1))
    denom = min(r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)) - 1
    return math.sqrt(phi2 / denom) if denom > 0 else 0.0


def correlation_ratio(x: pd.Series, groups: pd.Series) -> float:
    """Correlation ratio eta of numeric `x` by `groups` (aligned, no missing values); 0.0 if x is constant."""
    values = x.to_numpy(dtype=float)
    total = float(((values - values.mean()) ** 2).sum())
    if values.size < 2 or total <= 0:
        return 0.0
    stats = (
        pd.DataFrame({"x": values, "g": groups.astype(str).to_numpy()})
        .groupby("g")["x"]
        .agg(["count", "mean"])
    )
    between = float((stats["count"] * (stats["mean"] - values.mean()) ** 2).sum())
    return math.sqrt(min(1.0, between / total))


def _association(feature: pd.Series, attribute: pd.Series) -> tuple[float, str]:
    present = feature.notna().to_numpy() & attribute.notna().to_numpy()
    x, g = feature[present], attribute[present]
    if is_categorical(feature):
        return cramers_v(x, g), "cramers_v_corrected"
    return correlation_ratio(x, g), "correlation_ratio"


def proxy_table(frame: pd.DataFrame, sensitive: dict[str, np.ndarray], features: list[str]) -> pd.DataFrame:
    """Association of every feature with every sensitive attribute (treated as categorical).

    Columns feature, attribute, association (0..1), measure (`cramers_v_corrected` for categorical
    features, `correlation_ratio` for numeric ones), proxy (association >= PROXY_THRESHOLD). A feature
    named like the attribute is that attribute itself and is skipped. Sorted by association
    descending, then feature and attribute.
    """
    rows: list[dict[str, Any]] = []
    for attribute, values in sensitive.items():
        groups = pd.Series(np.asarray(values, dtype=object).ravel(), index=frame.index)
        if len(groups) != len(frame):
            raise ValueError(f"sensitive attribute {attribute!r} has {len(groups)} rows, frame {len(frame)}")
        for feature in features:
            if feature == attribute:
                continue
            association, measure = _association(frame[feature], groups)
            rows.append(
                {"feature": feature, "attribute": attribute, "association": association, "measure": measure}
            )
    table = pd.DataFrame(rows, columns=["feature", "attribute", "association", "measure"])
    table["association"] = table["association"].astype(float)
    table["proxy"] = table["association"] >= PROXY_THRESHOLD
    order = ["association", "feature", "attribute"]
    return table.sort_values(order, ascending=[False, True, True]).reset_index(drop=True)


# ------------------------------------------------------------------------------------ partial dependence
def feature_grid(series: pd.Series, grid_size: int = 20) -> list[Any]:
    """Values to set the feature to: observed levels, most frequent first (ties by name), for categorical
    columns; the unique observed values nearest `grid_size` evenly spaced quantiles from the 5th to the
    95th percentile for numeric ones. Missing values are ignored; at most `grid_size` values."""
    present = series.dropna()
    if present.empty:
        return []
    if is_categorical(series):
        counts = present.astype(object).value_counts(sort=False)
        levels = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
        return [_scalar(level) for level, _ in levels[:grid_size]]
    grid = np.quantile(present.to_numpy(), np.linspace(*QUANTILES, num=grid_size), method="nearest")
    return [_scalar(v) for v in np.unique(grid)]


def partial_dependence(
    predict_proba: PredictProba,
    frame: pd.DataFrame,
    feature: str,
    grid_size: int = 20,
    positive_index: int = 1,
    max_rows: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Columns value, mean_probability: mean of predict_proba[:, positive_index] over the (subsampled)
    rows with `feature` set to `value` in every row; the grid is `feature_grid`. The column keeps its
    dtype (integer columns get integer grid values, categoricals their categories)."""
    rows = _rows(frame, _subsample(len(frame), max_rows, seed))
    column = frame[feature]
    out: list[dict[str, Any]] = []
    for value in feature_grid(column, grid_size):
        edited = rows.copy()
        edited[feature] = pd.Series([value] * len(rows), index=rows.index, dtype=column.dtype)
        mean = float(_proba(predict_proba, edited)[:, positive_index].mean())
        out.append({"value": value, "mean_probability": mean})
    return pd.DataFrame(out, columns=["value", "mean_probability"])


# ------------------------------------------------------------------------------------------ figures
def importance_plot(
    table: pd.DataFrame, path: Path, sensitive_proxies: set[str] | frozenset[str] = frozenset(), top: int = 15
) -> Path:
    """Horizontal bars of the `top` most important features (largest on top) with ±std error bars;
    features in `sensitive_proxies` drawn (bar and name) in red and named so in the legend."""
    from matplotlib.patches import Patch

    shown = table.head(top).iloc[::-1]
    path = Path(path)
    with png_figure(path, (7.0, 1.5 + 0.35 * max(1, len(shown)))) as fig:
        ax = fig.subplots()
        is_proxy = [f in sensitive_proxies for f in shown["feature"]]
        colours = ["C3" if p else "C0" for p in is_proxy]
        y = np.arange(len(shown))
        ax.barh(y, shown["importance_mean"], xerr=shown["importance_std"], color=colours, capsize=3)
        ax.set_yticks(y, list(shown["feature"]))
        for label, proxy in zip(ax.get_yticklabels(), is_proxy, strict=True):
            if proxy:  # a zero-width bar shows no colour; its name still does
                label.set_color("C3")
        ax.axvline(0.0, color="grey", linewidth=0.8)
        ax.set(xlabel="importance (score drop when permuted)", title="permutation importance")
        handles = [Patch(color="C0", label="model input")]
        if any(is_proxy):
            handles.append(Patch(color="C3", label=PROXY_LABEL))
        ax.legend(handles=handles, loc="lower right")
    return path


def partial_dependence_plot(curves: dict[str, pd.DataFrame], path: Path) -> Path:
    """One panel per feature: a line over numeric grids, bars over categorical levels."""
    path = Path(path)
    n = max(1, len(curves))
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    with png_figure(path, (4.0 * ncols, 3.0 * nrows)) as fig:
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (feature, curve) in zip(axes, curves.items(), strict=False):
            values = curve["value"]
            if values.empty or is_categorical(values):
                x = np.arange(len(values))
                ax.bar(x, curve["mean_probability"], color="C0")
                tilt = len(values) > 4
                ax.set_xticks(
                    x, [str(v) for v in values], rotation=45 if tilt else 0, ha="right" if tilt else "center"
                )
            else:
                ax.plot(values.astype(float), curve["mean_probability"], marker="o", markersize=3)
            ax.set(title=feature, xlabel=feature, ylabel="mean P(positive)")
        for ax in axes[len(curves) :]:
            ax.set_axis_off()
    return path


# ------------------------------------------------------------------------------------------ report
def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{key: clean(value) for key, value in row.items()} for row in table.to_dict(orient="records")]


def interpretation_report(
    predict_proba: PredictProba,
    frame: pd.DataFrame,
    y: np.ndarray,
    sensitive: dict[str, np.ndarray],
    out_dir: Path,
    top_k: int = 3,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Importance, proxies and partial dependence of the `top_k` most important features.

    Writes out_dir/importance.png (sensitive attributes used as inputs and their proxies in red) and
    out_dir/partial_dependence.png. Returns flat metrics `interpret/importance/<feature>` and
    `interpret/max_proxy_association` (absent without sensitive attributes), and a JSON-ready dict
    with keys importance, proxies, partial_dependence, sensitive_in_inputs, proxy_features.
    """
    out_dir = Path(out_dir)
    features = [str(c) for c in frame.columns]
    importance = permutation_importance(predict_proba, frame, y, seed=seed)
    proxies = proxy_table(frame, sensitive, features)
    top = list(importance["feature"].head(top_k))
    curves = {f: partial_dependence(predict_proba, frame, f, seed=seed) for f in top}
    in_inputs = sorted(a for a in sensitive if a in features)
    proxy_features = sorted(set(proxies.loc[proxies["proxy"], "feature"]))
    importance_plot(importance, out_dir / "importance.png", set(proxy_features) | set(in_inputs))
    partial_dependence_plot(curves, out_dir / "partial_dependence.png")

    keys = unique_key_parts(list(importance["feature"]))
    metrics = {
        f"interpret/importance/{key}": clean(value)
        for key, value in zip(keys, importance["importance_mean"], strict=True)
    }
    if not proxies.empty:
        metrics["interpret/max_proxy_association"] = clean(proxies["association"].max())
    details = {
        "importance": _records(importance),
        "proxies": _records(proxies),
        "partial_dependence": {f: _records(curve) for f, curve in curves.items()},
        "sensitive_in_inputs": in_inputs,
        "proxy_features": proxy_features,
    }
    return metrics, details


def interpret_tabular(
    predict_raw: Callable[[Any], np.ndarray],
    raw_test: Any,
    y: np.ndarray,
    groups: dict[str, np.ndarray],
    out: Path,
    seed: int,
) -> dict[str, Any]:
    """Permutation importance, proxies of the sensitive attributes and partial dependence on raw rows."""
    flat, details = interpretation_report(predict_raw, raw_test, y, groups, out / "figures", seed=seed)
    write_json(out / "interpretation.json", details)
    return flat
