"""Interpretation on raw rows: importance finds the driver, proxies are caught, curves are shaped right."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlops.kinds.tabular.interpret import (
    PROXY_THRESHOLD,
    correlation_ratio,
    cramers_v,
    feature_grid,
    importance_plot,
    interpretation_report,
    partial_dependence,
    partial_dependence_plot,
    permutation_importance,
    proxy_table,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _logit(frame: pd.DataFrame) -> np.ndarray:
    x1 = frame["x1"].to_numpy(dtype=float, na_value=0.0)
    return 3.0 * np.nan_to_num(x1) + 0.8 * (frame["c"].astype(str).to_numpy() == "b")


def predict_proba(frame: pd.DataFrame) -> np.ndarray:
    """Fixed model: strong in x1, weak in c, blind to every other column; missing x1 counts as 0."""
    p = 1.0 / (1.0 + np.exp(-_logit(frame)))
    return np.column_stack([1.0 - p, p])


def _data(n: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "c": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]),
            "noise": rng.normal(size=n),
            "age": rng.integers(18, 80, n),
            "group_proxy": 2.0 * group + rng.normal(scale=0.5, size=n),
            "independent": rng.normal(size=n),
        }
    )
    p = predict_proba(frame)[:, 1]
    y = (rng.random(n) < p).astype(int)
    return frame, y, np.where(group == 1, "g1", "g0")


# ------------------------------------------------------------------------------------------ importance
def test_importance_ranks_the_driver_first_and_ignores_noise() -> None:
    frame, y, _ = _data()
    table = permutation_importance(predict_proba, frame, y)
    assert list(table.columns) == ["feature", "importance_mean", "importance_std"]
    assert table["feature"].iloc[0] == "x1"
    assert table["importance_mean"].iloc[0] > 0.2
    by_feature = table.set_index("feature")
    assert abs(by_feature.loc["noise", "importance_mean"]) < 0.01
    assert by_feature.loc["noise", "importance_std"] == 0.0  # the model never reads it
    assert 0.0 < by_feature.loc["c", "importance_mean"] < by_feature.loc["x1", "importance_mean"]
    # the unused columns tie at 0 and are then ordered by name
    zero = table[table["importance_mean"] == 0.0]["feature"].tolist()
    assert zero == sorted(["noise", "age", "group_proxy", "independent"])


def test_importance_is_deterministic_and_subsamples() -> None:
    frame, y, _ = _data()
    first = permutation_importance(predict_proba, frame, y, metric="accuracy", max_rows=500, n_repeats=3)
    second = permutation_importance(predict_proba, frame, y, metric="accuracy", max_rows=500, n_repeats=3)
    pd.testing.assert_frame_equal(first, second)
    other = permutation_importance(predict_proba, frame, y, metric="accuracy", max_rows=500, seed=1)
    assert not first["importance_mean"].equals(other["importance_mean"])


def test_importance_rejects_unknown_metric() -> None:
    frame, y, _ = _data(n=50)
    with pytest.raises(ValueError, match="metric"):
        permutation_importance(predict_proba, frame, y, metric="roc_auc")


# ------------------------------------------------------------------------------------------ proxies
def test_association_measures_on_known_values() -> None:
    groups = pd.Series(["a", "a", "b", "b"])
    # between-group SS 4, total SS 5 → eta = sqrt(0.8)
    assert correlation_ratio(pd.Series([1.0, 2.0, 3.0, 4.0]), groups) == pytest.approx(math.sqrt(0.8))
    assert correlation_ratio(pd.Series([7.0, 7.0, 7.0, 7.0]), groups) == 0.0
    same = pd.Series(["u", "v"] * 200)
    assert cramers_v(same, same) == pytest.approx(1.0)
    assert cramers_v(pd.Series(["u"] * 400), same) == 0.0


def test_bias_corrected_cramers_v_of_a_high_cardinality_independent_feature_stays_low() -> None:
    from scipy.stats.contingency import association

    rng = np.random.default_rng(3)
    many = pd.Series(rng.integers(0, 100, 1000).astype(str))
    groups = pd.Series(rng.integers(0, 2, 1000).astype(str))
    plain = association(pd.crosstab(many, groups).to_numpy(), method="cramer")
    assert plain > PROXY_THRESHOLD  # chance alone: about sqrt(99 / 1000)
    assert cramers_v(many, groups) < 0.2


def test_proxy_table_flags_the_encoded_group_only() -> None:
    frame, _, group = _data()
    frame["group_label"] = np.where(np.arange(len(frame)) % 10 == 0, "x", group)  # 90 % copy, categorical
    features = ["group_proxy", "independent", "c", "group_label"]
    table = proxy_table(frame, {"group": group}, features)
    assert list(table.columns) == ["feature", "attribute", "association", "measure", "proxy"]
    assert table["association"].is_monotonic_decreasing
    rows = table.set_index("feature")
    assert rows.loc["group_proxy", "measure"] == "correlation_ratio"
    assert rows.loc["group_proxy", "association"] > 0.8
    assert rows.loc["group_label", "measure"] == "cramers_v_corrected"
    assert rows.loc["group_label", "association"] > 0.8
    assert rows.loc["independent", "association"] < 0.1
    assert rows.loc["c", "association"] < 0.1
    assert rows["proxy"].to_dict() == {
        "group_proxy": True,
        "group_label": True,
        "independent": False,
        "c": False,
    }
    assert PROXY_THRESHOLD == 0.3


def test_proxy_table_drops_missing_values_pairwise_and_skips_the_attribute_itself() -> None:
    frame, _, group = _data()
    frame.loc[::3, "group_proxy"] = np.nan
    frame["group"] = group
    with_missing = pd.Series(group, dtype=object)
    with_missing[::7] = None
    table = proxy_table(frame, {"group": with_missing.to_numpy()}, ["group_proxy", "group"])
    assert table["feature"].tolist() == ["group_proxy"]
    assert table["association"].iloc[0] > 0.8


# ------------------------------------------------------------------------------------ partial dependence
def test_partial_dependence_of_the_driver_increases_over_a_quantile_grid() -> None:
    frame, _, _ = _data()
    curve = partial_dependence(predict_proba, frame, "x1", grid_size=10)
    assert list(curve.columns) == ["value", "mean_probability"]
    assert 2 <= len(curve) <= 10
    lo, hi = frame["x1"].quantile([0.05, 0.95])
    assert curve["value"].between(lo - 1e-9, hi + 1e-9).all()
    assert (np.diff(curve["mean_probability"]) > 0).all()
    assert curve["mean_probability"].iloc[-1] - curve["mean_probability"].iloc[0] > 0.5


def test_partial_dependence_of_unused_feature_is_flat_and_keeps_integers() -> None:
    frame, _, _ = _data()
    curve = partial_dependence(predict_proba, frame, "age", grid_size=5)
    assert all(isinstance(v, int) for v in curve["value"])
    assert curve["value"].is_monotonic_increasing
    assert np.ptp(curve["mean_probability"]) == pytest.approx(0.0, abs=1e-12)


def test_partial_dependence_lists_categorical_levels_by_frequency() -> None:
    frame, _, _ = _data()
    curve = partial_dependence(predict_proba, frame, "c")
    assert curve["value"].tolist() == ["a", "b", "c"]
    by_level = curve.set_index("value")["mean_probability"]
    assert by_level["b"] > by_level["a"]
    assert by_level["a"] == pytest.approx(by_level["c"])
    as_category = frame.assign(c=frame["c"].astype("category"))
    assert partial_dependence(predict_proba, as_category, "c", grid_size=2)["value"].tolist() == ["a", "b"]


def test_feature_grid_ignores_missing_values() -> None:
    assert feature_grid(pd.Series([np.nan, 1.0, 2.0, np.nan, 3.0]), grid_size=3) == [1.0, 2.0, 3.0]
    assert feature_grid(pd.Series([None, "b", "a", "b"], dtype=object)) == ["b", "a"]
    assert feature_grid(pd.Series([np.nan, np.nan])) == []


def test_missing_values_in_a_numeric_column_do_not_crash(tmp_path: Path) -> None:
    frame, y, group = _data(n=400)
    frame.loc[::5, "x1"] = np.nan
    table = permutation_importance(predict_proba, frame, y)
    assert table["feature"].iloc[0] == "x1"
    curve = partial_dependence(predict_proba, frame, "x1")
    assert curve["value"].notna().all() and curve["mean_probability"].notna().all()
    metrics, details = interpretation_report(predict_proba, frame, y, {"group": group}, tmp_path)
    assert metrics["interpret/importance/x1"] > 0.0


# ------------------------------------------------------------------------------------------ plots and report
def test_plots_are_non_empty_pngs(tmp_path: Path) -> None:
    frame, y, _ = _data(n=300)
    table = permutation_importance(predict_proba, frame, y, n_repeats=2)
    path = importance_plot(table, tmp_path / "imp.png", {"group_proxy"}, top=4)
    curves = {
        f: partial_dependence(predict_proba, frame, f, grid_size=5) for f in ("x1", "c", "age", "noise")
    }
    pd_path = partial_dependence_plot(curves, tmp_path / "pd.png")
    for p in (path, pd_path):
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 1000


def test_report_is_json_ready_deterministic_and_names_proxies(tmp_path: Path) -> None:
    frame, y, group = _data(n=600)
    frame["group"] = group  # the sensitive attribute is itself a model input
    sensitive = {"group": group}
    metrics, details = interpretation_report(predict_proba, frame, y, sensitive, tmp_path / "a", top_k=2)
    again = interpretation_report(predict_proba, frame, y, sensitive, tmp_path / "b", top_k=2)
    assert (metrics, details) == again
    for name in ("importance.png", "partial_dependence.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes().startswith(PNG)

    json.dumps(details, allow_nan=False)
    assert set(details) == {
        "importance",
        "proxies",
        "partial_dependence",
        "sensitive_in_inputs",
        "proxy_features",
    }
    assert details["sensitive_in_inputs"] == ["group"]
    assert details["proxy_features"] == ["group_proxy"]
    assert list(details["partial_dependence"]) == ["x1", "c"]
    assert details["importance"][0]["feature"] == "x1"
    assert all(row["attribute"] == "group" and row["feature"] != "group" for row in details["proxies"])

    assert set(metrics) == {f"interpret/importance/{c}" for c in frame.columns} | {
        "interpret/max_proxy_association"
    }
    assert metrics["interpret/importance/noise"] == 0.0
    assert metrics["interpret/max_proxy_association"] == details["proxies"][0]["association"] > 0.8
    assert all(round(v, 6) == v for v in metrics.values())
