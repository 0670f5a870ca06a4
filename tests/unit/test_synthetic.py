"""The built-in income table: deterministic, on schema, and fair or unfair exactly as `bias` says."""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression

from dlops.kinds.tabular.synthetic import COLUMNS, MISSING_COLUMNS, generate_income
from dlops.params import SyntheticIncomeSource

NUMERIC = ["age", "education_years", "hours_per_week", "capital_gain", "neighborhood_income"]
CATEGORICAL = ["workclass", "occupation", "marital_status"]


def cfg(**kwargs: Any) -> SyntheticIncomeSource:
    return SyntheticIncomeSource(source="synthetic-income", **kwargs)


@cache
def full(bias: float) -> pd.DataFrame:
    """The default 20k-row table (seed 7), generated once per bias for the whole module."""
    return generate_income(cfg(bias=bias))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_same_cfg_gives_identical_table_and_parquet_bytes() -> None:
    a, b = generate_income(cfg(rows=2000, bias=1.0)), generate_income(cfg(rows=2000, bias=1.0))
    pd.testing.assert_frame_equal(a, b)
    assert parquet_bytes(a) == parquet_bytes(b)


def test_different_seed_gives_different_table() -> None:
    a, b = generate_income(cfg(rows=2000, seed=1)), generate_income(cfg(rows=2000, seed=2))
    assert not a.equals(b)


def test_schema_and_value_ranges() -> None:
    frame = full(0.0)
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == 20_000
    for column in NUMERIC:
        assert frame[column].dtype == np.float64
    assert frame["age"].between(17, 90).all()
    assert frame["education_years"].dropna().between(1, 20).all()
    assert frame["hours_per_week"].dropna().between(1, 99).all()
    assert (frame["capital_gain"] == 0).mean() > 0.85
    assert set(frame["sex"]) == {"Female", "Male"}
    assert set(frame["income"]) == {"<=50K", ">50K"}
    race_share = frame["race"].value_counts(normalize=True)
    assert set(race_share.index) == {"White", "Black", "Asian", "Other"}
    assert race_share.min() > 0.05 and race_share.max() < 0.8
    assert 0.25 <= (frame["income"] == ">50K").mean() <= 0.35
    for column in CATEGORICAL:
        assert 3 <= frame[column].nunique() <= 10


def test_proxy_is_strongly_tied_to_race() -> None:
    frame = full(0.0)
    by_race = frame.groupby("race")["neighborhood_income"].mean()
    assert by_race["White"] - by_race["Black"] > 0.8 * frame["neighborhood_income"].std()


def test_missing_values_only_in_feature_columns_at_the_configured_rate() -> None:
    frame = generate_income(cfg(rows=4000, missing_rate=0.05))
    for column in MISSING_COLUMNS:
        assert frame[column].isna().mean() == pytest.approx(0.05, abs=1e-9)
    for column in ("sex", "race", "income"):
        assert frame[column].notna().all()
    assert generate_income(cfg(rows=500, missing_rate=0.0)).notna().all().all()


def test_outliers_are_extreme_but_valid() -> None:
    frame = generate_income(cfg(rows=4000, outlier_rate=0.05, missing_rate=0.0))
    assert (frame["hours_per_week"] >= 90).sum() >= 60
    assert (frame["capital_gain"] == 99_999).sum() >= 60
    assert frame["hours_per_week"].max() <= 99


def positive_rate_gap(frame: pd.DataFrame, attr: str) -> float:
    rates = (frame["income"] == ">50K").groupby(frame[attr]).mean()
    return float(rates.max() - rates.min())


def test_label_is_independent_of_sex_and_race_without_bias() -> None:
    frame = full(0.0)
    assert positive_rate_gap(frame, "sex") < 0.03
    assert positive_rate_gap(frame, "race") < 0.03


def test_label_depends_on_sex_and_race_with_bias() -> None:
    frame = full(2.0)
    assert positive_rate_gap(frame, "sex") > 0.1
    assert positive_rate_gap(frame, "race") > 0.1


def model_dp_difference(bias: float) -> float:
    """DP difference (by sex) of a logistic regression that sees the features but never sex or race."""
    frame = full(bias)
    x = pd.get_dummies(frame[NUMERIC + CATEGORICAL], dtype=float)
    x = x.fillna(x.median())
    x = ((x - x.mean()) / x.std()).to_numpy()
    y = (frame["income"] == ">50K").to_numpy()
    train = np.arange(len(frame)) < 14_000
    pred = LogisticRegression(max_iter=500).fit(x[train], y[train]).predict(x[~train])
    return float(demographic_parity_difference(y[~train], pred, sensitive_features=frame["sex"][~train]))


def test_model_without_sensitive_inputs_is_fair_without_bias() -> None:
    assert model_dp_difference(0.0) < 0.05


def test_model_learns_the_bias_through_the_proxy() -> None:
    assert model_dp_difference(2.0) > 0.1


# ------------------------------------------------------------------------------------ distribution shift
def positive_share(frame: pd.DataFrame) -> float:
    return float((frame["income"] == ">50K").mean())


def test_default_shift_is_identical_to_no_shift_key() -> None:
    base = generate_income(cfg(rows=3000))
    for shift in ({}, {"age": 0.0, "education_years": 0.0, "hours_per_week": 0.0, "positive_rate": 0.0}):
        pd.testing.assert_frame_equal(generate_income(cfg(rows=3000, shift=shift)), base)


def test_age_shift_moves_age_and_raises_the_positive_rate() -> None:
    base = full(0.0)
    shifted = generate_income(cfg(shift={"age": 8}))
    assert abs((shifted["age"].mean() - base["age"].mean()) - 8) < 1
    assert shifted["age"].between(17, 90).all()
    assert positive_share(shifted) > positive_share(base) + 0.01  # older people earn more in the model
    others = [c for c in COLUMNS if c not in ("age", "income")]
    pd.testing.assert_frame_equal(shifted[others], base[others])  # only the shifted feature moves


def test_education_and_hours_shifts_move_those_features_within_bounds() -> None:
    base = full(0.0)
    shifted = generate_income(cfg(shift={"education_years": 2, "hours_per_week": -10}))
    assert abs((shifted["education_years"].mean() - base["education_years"].mean()) - 2) < 0.5
    assert abs((shifted["hours_per_week"].mean() - base["hours_per_week"].mean()) + 10) < 1
    assert shifted["education_years"].dropna().between(1, 20).all()
    assert shifted["hours_per_week"].dropna().between(1, 99).all()


def test_positive_rate_shift_raises_the_positive_share_with_the_same_features() -> None:
    base = full(0.0)
    shifted = generate_income(cfg(shift={"positive_rate": 1.0}))
    assert positive_share(shifted) > positive_share(base) + 0.05
    features = [c for c in COLUMNS if c != "income"]
    pd.testing.assert_frame_equal(shifted[features], base[features])  # prior shift: features unchanged


@pytest.mark.parametrize(
    "shift",
    [{"age": 100}, {"education_years": -11}, {"hours_per_week": 41}, {"positive_rate": 6}, {"foo": 1}],
)
def test_invalid_shift_is_rejected(shift: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        cfg(shift=shift)
