"""Data tier for images: a suite drafted from a clean folder passes it; a corrupt PNG, an odd shape, an
unknown class and duplicates fail it, and the error names the files. Splits never share an image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dlops.data.splitting import duplicates_across_splits, split_images
from dlops.data.validation import DataValidationError, name_files, raise_on_failure
from dlops.kinds.images.sources import load_images
from dlops.kinds.images.suite import draft_image_suite, table_for_validation, validate_table
from dlops.params import ImageTask, SplitConfig


def folder_task(metadata: str | None = None) -> ImageTask:
    ingest: dict[str, Any] = {"source": "image-folder", "path": "imgs", "size": None, "metadata": metadata}
    return ImageTask.model_validate(
        {
            "kind": "images",
            "ingest": ingest,
            "columns": {"sensitive": []},
            "validate": {"suite": "s.json", "min_rows": 10, "max_class_fraction": 0.8},
            "preprocess": {},
            "augment": {},
        }
    )


def write_folder(root: Path, per_class: int = 12) -> None:
    rng = np.random.default_rng(0)
    for name in ("circle", "square"):
        (root / "imgs" / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(1, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / "imgs" / name / f"{i:03d}.png")


def check(root: Path, suite: dict[str, Any]) -> dict[str, Any]:
    frame = table_for_validation(load_images(folder_task(), root))
    summary = validate_table(frame, suite, folder_task().columns, folder_task().validate_, None)
    return name_files(summary, frame)


@pytest.fixture
def reference(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    write_folder(tmp_path)
    frame = table_for_validation(load_images(folder_task(), tmp_path))
    suite = draft_image_suite(frame, folder_task().columns, folder_task().validate_, "shapes")
    return tmp_path, suite


def test_the_reference_set_passes_its_own_suite(reference: tuple[Path, dict[str, Any]]) -> None:
    root, suite = reference
    summary = check(root, suite)
    assert summary["success"], [r for r in summary["results"] if not r["success"]]
    raise_on_failure(summary, source="data/raw/shapes.parquet")


def test_a_corrupt_png_is_named(reference: tuple[Path, dict[str, Any]]) -> None:
    root, suite = reference
    (root / "imgs" / "circle" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataValidationError, match=r"readable.*circle/broken\.png"):
        raise_on_failure(check(root, suite), source="data/raw/shapes.parquet")


def test_a_wrongly_shaped_image_is_named(reference: tuple[Path, dict[str, Any]]) -> None:
    root, suite = reference
    Image.fromarray(np.full((8, 30), 9, np.uint8), mode="L").save(root / "imgs" / "square" / "wide.png")
    with pytest.raises(DataValidationError, match=r"width.*square/wide\.png"):
        raise_on_failure(check(root, suite), source="data/raw/shapes.parquet")


def test_an_unknown_class_and_duplicates_fail(reference: tuple[Path, dict[str, Any]]) -> None:
    root, suite = reference
    (root / "imgs" / "triangle").mkdir()
    for i in range(3):  # three copies of one image in a class the suite never saw
        (root / "imgs" / "triangle" / f"{i}.png").write_bytes((root / "imgs/circle/000.png").read_bytes())
    summary = check(root, suite)
    failed = {(r["expectation"], r["column"]) for r in summary["results"] if not r["success"]}
    assert ("expect_column_values_to_be_in_set", "class_name") in failed
    assert ("expect_column_values_to_be_unique", "sha1") in failed
    detail = " ".join(r["detail"] for r in summary["results"] if not r["success"])
    assert "triangle/0.png" in detail


def test_copies_of_one_image_never_straddle_splits(tmp_path: Path) -> None:
    write_folder(tmp_path, per_class=30)
    for i in range(6):  # six copies of one image
        (tmp_path / "imgs" / "square" / f"copy{i}.png").write_bytes(
            (tmp_path / "imgs/square/000.png").read_bytes()
        )
    raw = load_images(folder_task(), tmp_path)
    splits = split_images(raw, folder_task().columns, SplitConfig(train=0.6, val=0.2, test=0.2, seed=1))
    assert sum(len(f) for f in splits.values()) == len(raw)
    assert duplicates_across_splits(splits) == 0
    copies = raw.loc[raw["source"].str.contains("copy"), "sha1"].iloc[0]
    assert sum(bool((f["sha1"] == copies).any()) for f in splits.values()) == 1
    assert duplicates_across_splits({"a": raw.iloc[:40], "b": raw.iloc[30:]}) > 0
    assert isinstance(splits["train"], pd.DataFrame)
