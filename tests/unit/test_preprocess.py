"""Splits, the fitted transform and batch augmentation: no leakage, stable on disk, deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlops.data.splitting import split_frame
from dlops.errors import BadInput
from dlops.kinds.tabular.synthetic import generate_income
from dlops.kinds.tabular.transform import (
    GROUP_PREFIX,
    LABEL,
    TabularTransform,
    augment_batch,
    make_split_frame,
)
from dlops.params import (
    ColumnRoles,
    PreprocessConfig,
    SplitConfig,
    SyntheticIncomeSource,
    TabularAugmentConfig,
)

COLUMNS = ColumnRoles(
    target="income",
    positive_label=">50K",
    sensitive=["sex", "race"],
    numeric=["age", "education_years", "hours_per_week", "capital_gain", "neighborhood_income"],
    categorical=["workclass", "occupation", "marital_status"],
)
CFG = PreprocessConfig()


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return generate_income(
        SyntheticIncomeSource(source="synthetic-income", rows=3000, bias=1.0, missing_rate=0.05)
    )


@pytest.fixture(scope="module")
def splits(raw: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return split_frame(raw, COLUMNS, CFG.split)


@pytest.fixture(scope="module")
def fitted(splits: dict[str, pd.DataFrame]) -> TabularTransform:
    return TabularTransform.fit(splits["train"], COLUMNS, CFG)


def positive_rate(frame: pd.DataFrame) -> float:
    return float((frame["income"] == ">50K").mean())


# ---------------------------------------------------------------------------------------------- split
def test_splits_are_disjoint_cover_every_row_and_have_the_right_sizes(
    raw: pd.DataFrame, splits: dict[str, pd.DataFrame]
) -> None:
    index = [set(frame.index) for frame in splits.values()]
    assert not (index[0] & index[1]) and not (index[0] & index[2]) and not (index[1] & index[2])
    assert set().union(*index) == set(raw.index)
    assert [len(f) for f in splits.values()] == pytest.approx([2100, 450, 450], abs=10)


def test_split_is_stratified_by_label_and_sensitive_groups(
    raw: pd.DataFrame, splits: dict[str, pd.DataFrame]
) -> None:
    for frame in splits.values():
        assert positive_rate(frame) == pytest.approx(positive_rate(raw), abs=0.02)
        share = frame["race"].value_counts(normalize=True)
        assert share["Black"] == pytest.approx((raw["race"] == "Black").mean(), abs=0.02)


def test_split_is_deterministic_and_seeded(raw: pd.DataFrame, splits: dict[str, pd.DataFrame]) -> None:
    again = split_frame(raw, COLUMNS, CFG.split)
    assert all(again[k].index.equals(splits[k].index) for k in splits)
    other = split_frame(raw, COLUMNS, SplitConfig(seed=1))
    assert not other["test"].index.equals(splits["test"].index)


def test_tiny_strata_fall_back_to_label_strata() -> None:
    # 8 rows of a rare group cannot reach three splits on their own; they are pooled, not lost.
    frame = pd.DataFrame(
        {"x": np.arange(200.0), "g": ["a"] * 192 + ["rare"] * 8, "y": ["p", "n"] * 100},
    )
    roles = ColumnRoles(target="y", sensitive=["g"], numeric=["x"])
    parts = split_frame(frame, roles, SplitConfig())
    assert sum(map(len, parts.values())) == 200
    assert all(len(p) > 0 for p in parts.values())


# ------------------------------------------------------------------------------------------ transform
def test_scaling_and_imputation_use_training_statistics_only(
    splits: dict[str, pd.DataFrame], fitted: TabularTransform
) -> None:
    train = splits["train"]
    for spec in fitted.numeric:
        column = train[spec.name]
        assert spec.median == column.median()
        imputed = column.fillna(column.median())
        assert spec.center == pytest.approx(imputed.mean())
        assert spec.scale == pytest.approx(imputed.std(ddof=0))
    x = fitted.transform(train)
    numeric = [fitted.feature_names.index(s.name) for s in fitted.numeric]
    np.testing.assert_allclose(x[:, numeric].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x[:, numeric].std(0), 1, atol=1e-4)


def test_val_and_test_rows_do_not_change_the_transform(raw: pd.DataFrame, fitted: TabularTransform) -> None:
    held_out = split_frame(raw, COLUMNS, CFG.split)
    changed = raw.copy()
    rows = held_out["val"].index.union(held_out["test"].index)
    changed.loc[rows, "age"] = 90.0
    changed.loc[rows, "occupation"] = "Astronaut"
    refit = TabularTransform.fit(split_frame(changed, COLUMNS, CFG.split)["train"], COLUMNS, CFG)
    assert refit.to_dict() == fitted.to_dict()


def test_output_shape_dtype_and_missing_indicators(
    splits: dict[str, pd.DataFrame], fitted: TabularTransform
) -> None:
    x = fitted.transform(splits["val"])
    assert x.dtype == np.float32 and x.shape == (len(splits["val"]), len(fitted.feature_names))
    assert not np.isnan(x).any()
    names = fitted.feature_names
    assert "education_years=__missing__" in names and "age=__missing__" not in names  # age is never missing
    assert "sex=Male" not in names and not any(n.startswith("race") for n in names)  # sensitive: not features
    column = names.index("workclass=__missing__")
    np.testing.assert_array_equal(x[:, column], splits["val"]["workclass"].isna().to_numpy())


def test_unseen_and_rare_categories_go_to_other(splits: dict[str, pd.DataFrame]) -> None:
    fitted = TabularTransform.fit(splits["train"], COLUMNS, CFG.model_copy(update={"max_categories": 3}))
    assert len(fitted.categorical[1].levels) == 3  # occupation: the 3 most frequent levels
    rows = splits["test"].head(3).copy()
    rows["occupation"] = ["Astronaut", None, fitted.categorical[1].levels[0]]
    x = fitted.transform(rows)
    names = fitted.feature_names
    other, missing = names.index("occupation=__other__"), names.index("occupation=__missing__")
    assert x[:, other].tolist() == [1, 0, 0]
    assert x[:, missing].tolist() == [0, 1, 0]
    one_hot = [i for i, n in enumerate(names) if n.startswith("occupation=")]
    assert x[:, one_hot].sum(1).tolist() == [1, 1, 1]


def test_json_round_trip_gives_identical_output(
    tmp_path: Path, splits: dict[str, pd.DataFrame], fitted: TabularTransform
) -> None:
    path = tmp_path / "transform.json"
    fitted.to_json(path)
    loaded = TabularTransform.from_json(path)
    assert loaded == fitted
    np.testing.assert_array_equal(loaded.transform(splits["test"]), fitted.transform(splits["test"]))
    fitted.to_json(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("labels", "positive", "classes"),
    [
        (["<=50K", ">50K"], ">50K", ["<=50K", ">50K"]),
        (["<=50K", ">50K"], "<=50K", [">50K", "<=50K"]),
        ([0, 1], 0, ["1", "0"]),
        ([True, False], True, ["False", "True"]),
        (["b", "a", "c"], None, ["a", "b", "c"]),
    ],
)
def test_classes_put_the_positive_label_at_index_1(
    labels: list, positive: object, classes: list[str]
) -> None:
    frame = pd.DataFrame({"x": np.arange(12.0), "y": (labels * 12)[:12]})
    roles = ColumnRoles(target="y", positive_label=positive, numeric=["x"])  # type: ignore[arg-type]
    fitted = TabularTransform.fit(frame, roles, CFG)
    assert fitted.classes == classes
    assert fitted.encode_labels(frame["y"]).dtype == np.int64
    if positive is not None:
        assert fitted.encode_labels(pd.Series([positive])).tolist() == [1]


def test_unknown_positive_label_and_unseen_labels_raise() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]})
    with pytest.raises(BadInput, match="columns.positive_label: 'z' is not a value"):
        TabularTransform.fit(frame, ColumnRoles(target="y", positive_label="z", numeric=["x"]), CFG)
    fitted = TabularTransform.fit(frame, ColumnRoles(target="y", numeric=["x"]), CFG)
    with pytest.raises(ValueError, match=r"not seen in training: \['c'\]"):
        fitted.encode_labels(pd.Series(["a", "c"]))


def test_make_split_frame_follows_the_contract(
    splits: dict[str, pd.DataFrame], fitted: TabularTransform
) -> None:
    rows = splits["val"].copy()
    rows.loc[rows.index[0], "race"] = None
    frame = make_split_frame(fitted, rows)
    assert list(frame.columns) == [*fitted.feature_names, LABEL, f"{GROUP_PREFIX}sex", f"{GROUP_PREFIX}race"]
    assert (frame[fitted.feature_names].dtypes == np.float32).all()
    assert frame[LABEL].dtype == np.int64
    assert frame[LABEL].tolist() == (rows["income"] == ">50K").astype(int).tolist()
    assert frame[f"{GROUP_PREFIX}race"].iloc[0] == "<missing>"
    assert frame[f"{GROUP_PREFIX}sex"].tolist() == rows["sex"].tolist()


def test_minmax_scaling_maps_train_to_unit_range(splits: dict[str, pd.DataFrame]) -> None:
    fitted = TabularTransform.fit(splits["train"], COLUMNS, CFG.model_copy(update={"scaling": "minmax"}))
    x = fitted.transform(splits["train"])
    assert x.min() == 0.0 and x.max() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------- augmentation
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(16, 5, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 3


def test_mixup_returns_soft_targets_that_sum_to_one() -> None:
    x, y = batch()
    cfg = TabularAugmentConfig(noise_std=0.1, mixup_alpha=0.4)
    xa, ya = augment_batch(x, y, 3, cfg, torch.Generator().manual_seed(1))
    assert xa.shape == (16, 5) and ya.shape == (16, 3) and ya.dtype == torch.float32
    torch.testing.assert_close(ya.sum(1), torch.ones(16))
    assert (ya >= 0).all()


def test_augmentation_is_deterministic_with_a_seeded_generator() -> None:
    x, y = batch()
    cfg = TabularAugmentConfig(noise_std=0.1, mixup_alpha=0.4)
    first = augment_batch(x, y, 3, cfg, torch.Generator().manual_seed(1))
    second = augment_batch(x, y, 3, cfg, torch.Generator().manual_seed(1))
    third = augment_batch(x, y, 3, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], third[0])


def test_noise_only_keeps_integer_targets_and_zero_config_is_identity() -> None:
    x, y = batch()
    xa, ya = augment_batch(x, y, 3, TabularAugmentConfig(noise_std=0.5), torch.Generator().manual_seed(1))
    assert torch.equal(ya, y) and not torch.equal(xa, x)
    assert (xa - x).std() == pytest.approx(0.5, abs=0.15)
    xi, yi = augment_batch(x, y, 3, TabularAugmentConfig(), torch.Generator().manual_seed(1))
    assert torch.equal(xi, x) and torch.equal(yi, y)
