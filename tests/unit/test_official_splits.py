"""A dataset's own split is kept: a split column, or a source's `test:` sub-source (a second table, IDX
pair or folder); val is carved from train; copies across the given splits are reported, never moved.
Tabular rows with identical features stay in one split; exact duplicate records are what validate counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.unit.test_image_sources import write_idx_pair

from dlops.data.inputs import DataSourceError
from dlops.data.splitting import GIVEN_SPLIT, given_splits, provenance_tag, split_by_key, split_provenance
from dlops.kinds.images.sources import load_images
from dlops.kinds.tabular.sources import RECORD, feature_duplicates, feature_key, load_raw
from dlops.kinds.text.sources import TextDataError, load_texts
from dlops.params import ColumnRoles, ImageTask, SplitConfig, TabularTask, TextTask
from dlops.params.fields import input_paths

ROLES = ColumnRoles(target="y", sensitive=["g"], numeric=["x"], categorical=[])
RNG = np.random.default_rng(0)


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x": rng.normal(size=rows), "g": rng.choice(["a", "b"], rows), "y": rng.integers(0, 2, rows)}
    )


def keyed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(key=feature_key(frame, ROLES))


def test_a_split_column_is_kept_and_val_is_carved_from_train() -> None:
    frame = table(400).assign(part=["train"] * 300 + ["TEST"] * 100)
    split = SplitConfig(column="part", seed=3)
    parts = split_by_key(keyed(frame), ROLES, split, key="key")
    assert len(parts["test"]) == 100 and set(parts["test"].index) == set(range(300, 400))
    # val / (train + val) = 0.15 / 0.85 of the given train rows
    assert len(parts["val"]) == pytest.approx(300 * 0.15 / 0.85, abs=3)
    assert len(parts["train"]) + len(parts["val"]) == 300
    again = split_by_key(keyed(frame), ROLES, split, key="key")
    assert parts["val"].index.equals(again["val"].index)  # seeded
    provenance = split_provenance(keyed(frame), parts, split, key="key")
    assert provenance["how"] == "given" and provenance["val_carved_from_train"]
    assert provenance["given"] == {"train": 300, "val": 0, "test": 100}
    assert provenance_tag(provenance) == "given by part, val carved from train, seed 3, 0 items across splits"


def test_a_given_val_is_kept_and_rows_without_a_split_are_split_by_fractions() -> None:
    frame = table(600).assign(part=["train"] * 200 + ["dev"] * 100 + ["test"] * 100 + [None] * 200)
    parts = split_by_key(keyed(frame), ROLES, SplitConfig(column="part"), key="key")
    assert set(range(200, 300)) <= set(parts["val"].index)
    assert set(range(300, 400)) <= set(parts["test"].index)
    unmarked = {name: len(set(part.index) & set(range(400, 600))) for name, part in parts.items()}
    assert unmarked == {"train": 140, "val": 30, "test": 30}


def test_copies_across_given_splits_are_reported_not_moved() -> None:
    frame = table(200)
    frame = pd.concat([frame, frame.iloc[:7]], ignore_index=True).assign(part=["train"] * 200 + ["test"] * 7)
    split = SplitConfig(column="part")
    parts = split_by_key(keyed(frame), ROLES, split, key="key")
    assert set(range(200, 207)) <= set(parts["test"].index)  # the copies stay in the given test split
    leak = split_provenance(keyed(frame), parts, split, key="key")["leakage"]
    assert leak["count"] >= 1 and leak["examples"][0].startswith("row ")


def test_unknown_split_values_and_a_missing_column_are_named() -> None:
    frame = table(10).assign(part=["train"] * 9 + ["holdout"])
    with pytest.raises(DataSourceError, match=r"split column 'part': values \['holdout'\]"):
        given_splits(frame, "part")
    with pytest.raises(DataSourceError, match=r"preprocess.split.column: the data has no column 'fold'"):
        given_splits(frame, "fold")


def test_feature_identical_rows_of_different_records_stay_in_one_split() -> None:
    base = table(300)
    repeated = pd.concat([base] + [base.iloc[:60]] * 3, ignore_index=True)  # 180 feature-identical rows
    parts = split_by_key(keyed(repeated), ROLES, SplitConfig(), key="key")
    where = {i: name for name, part in parts.items() for i in part.index}
    for copy in range(3):
        for row in range(60):
            assert where[300 + 60 * copy + row] == where[row]
    assert feature_duplicates(repeated, ROLES) == {
        "rows": 180,
        "fraction": 0.375,
        "handled": "feature-identical rows are kept in one split",
    }


def tabular(
    ingest: dict[str, Any], split: dict[str, Any] | None = None, ignored: list[str] | None = None
) -> TabularTask:
    columns = ROLES.model_copy(update={"ignored": ignored or []})
    sections = {"validate": {"suite": "s.json"}, "preprocess": {"split": split or {}}, "augment": {}}
    return TabularTask.model_validate({"kind": "tabular", "ingest": ingest, "columns": columns, **sections})


def test_a_table_with_its_own_test_file(tmp_path: Path) -> None:
    table(50).to_csv(tmp_path / "adult.data", index=False)
    table(20, seed=1).to_csv(tmp_path / "adult.test", index=False, sep=";")
    source = {
        "source": "table",
        "path": "adult.data",
        "format": "csv",
        "test": {"path": "adult.test", "format": "csv", "csv_options": {"sep": ";"}},
    }
    task = tabular(source)
    frame = load_raw(task, tmp_path)
    assert frame[GIVEN_SPLIT].tolist() == ["train"] * 50 + ["test"] * 20
    assert input_paths(task.ingest) == ["adult.data", "adult.test"]


def test_a_split_column_is_read_and_exact_records_include_ignored_columns(tmp_path: Path) -> None:
    frame = table(6).assign(part=["train"] * 4 + ["test"] * 2, weight=[1, 2, 3, 4, 5, 6])
    frame = pd.concat([frame, frame.iloc[[0]].assign(weight=9), frame.iloc[[1]]], ignore_index=True)
    frame.to_csv(tmp_path / "t.csv", index=False)
    raw = load_raw(tabular({"source": "table", "path": "t.csv"}, {"column": "part"}, ["weight"]), tmp_path)
    assert list(raw.columns) == ["x", "g", "y", "part", RECORD]
    # row 6 repeats row 0 but for its (ignored) weight: a different record; row 7 is an exact copy
    assert raw[RECORD].duplicated().tolist() == [False] * 7 + [True]
    assert feature_key(raw, ROLES).duplicated().sum() == 2
    with pytest.raises(DataSourceError, match=r"(?s)missing declared column.*'fold' \(split\)"):
        load_raw(
            tabular({"source": "table", "path": "t.csv"}, {"column": "fold"}, ["weight", "part"]), tmp_path
        )


def test_an_idx_set_with_its_own_test_pair(tmp_path: Path) -> None:
    write_idx_pair(tmp_path, RNG.integers(0, 256, (12, 6, 6), dtype=np.uint8), np.arange(12) % 3)
    (tmp_path / "t10k").mkdir()
    write_idx_pair(tmp_path / "t10k", RNG.integers(0, 256, (5, 6, 6), dtype=np.uint8), np.arange(5) % 3)
    ingest = {
        "source": "idx",
        "images": "images.idx",
        "labels": "labels.idx",
        "test": {"images": "t10k/images.idx", "labels": "t10k/labels.idx"},
    }
    task = ImageTask.model_validate(
        {
            "kind": "images",
            "ingest": ingest,
            "columns": {},
            "validate": {"suite": "s.json"},
            "preprocess": {},
            "augment": {},
        }
    )
    frame = load_images(task, tmp_path)
    assert frame[GIVEN_SPLIT].tolist() == ["train"] * 12 + ["test"] * 5
    assert frame["source"].iloc[-1] == "t10k/images.idx[4]"
    assert input_paths(task.ingest)[-2:] == ["t10k/images.idx", "t10k/labels.idx"]


def text_task(ingest: dict[str, Any], split: dict[str, Any] | None = None) -> TextTask:
    sections = {"validate": {"suite": "s.json"}, "preprocess": {"split": split or {}}, "augment": {}}
    return TextTask.model_validate({"kind": "text", "ingest": ingest, "columns": {}, **sections})


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_a_text_folder_with_its_own_test_folder_and_chosen_classes(tmp_path: Path) -> None:
    for part, n in (("train", 3), ("test", 2)):
        for label in ("neg", "pos", "unsup"):
            for i in range(n):
                write(tmp_path / f"aclImdb/{part}/{label}/{i}.txt", f"{label} review {part} {i}")
    ingest = {
        "source": "text-folder",
        "path": "aclImdb/train",
        "test": "aclImdb/test",
        "classes": ["neg", "pos"],
    }
    frame = load_texts(text_task(ingest), tmp_path)
    assert frame[GIVEN_SPLIT].tolist() == ["train"] * 6 + ["test"] * 4
    assert sorted(set(frame["label"])) == ["neg", "pos"]
    assert frame["source"].iloc[-1] == "aclImdb/test/pos/1.txt"
    with pytest.raises(TextDataError, match=r"ingest.classes \['good'\] have no subfolder"):
        load_texts(text_task({**ingest, "classes": ["good"]}), tmp_path)


def test_a_text_table_reads_its_split_column(tmp_path: Path) -> None:
    write(tmp_path / "r.tsv", "sentence\tlabel\tsplit\ngood\t1\ttrain\nbad\t0\tvalidation\n")
    ingest = {"source": "text-table", "path": "r.tsv", "text_column": "sentence"}
    frame = load_texts(text_task(ingest, {"column": "split"}), tmp_path)
    assert given_splits(frame, "split").tolist() == ["train", "val"]
