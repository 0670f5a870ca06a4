"""The bad requests of the serving corpus (tests/integration/test_bad_inputs.py): each is scored by the
baseline's registered champion (`models:/<name>@champion`, the pyfunc that `mlflow models serve` runs)
and must be refused with a message naming the column, row or shape, never answered with a guess."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Request:
    name: str
    model: str  # the registered model's name
    make: Callable[[Path], Any]  # the baseline's root -> the input given to predict
    names: tuple[str, ...]  # strings the error must contain


def _rows(root: Path, n: int = 4) -> pd.DataFrame:
    return pd.read_csv(root / "data" / "input" / "income.csv").drop(columns=["income"]).head(n)


def _with(root: Path, column: str, row: int, value: Any) -> pd.DataFrame:
    frame = _rows(root)
    frame[column] = frame[column].astype(object if isinstance(value, str) else float)
    frame.loc[row, column] = value
    return frame


def _images(
    shape: tuple[int, ...], fill: float | None = None, dtype: Any = np.float32
) -> Callable[[Path], Any]:
    def make(root: Path) -> np.ndarray:
        array = np.random.default_rng(0).random(shape).astype(dtype)
        if fill is not None:
            array[1, 0, 2, 3] = fill
        return array

    return make


def _texts(texts: list[Any], column: str = "text") -> Callable[[Path], pd.DataFrame]:
    return lambda root: pd.DataFrame({column: texts, "group": ["a"] * len(texts)})


TABLE, IMAGES, TEXT = "dlops-tabular-mlp", "dlops-images-mlp", "dlops-text-mlp"
REQUESTS = [
    Request("serve-table-huge-number", TABLE, lambda r: _with(r, "age", 2, 1e308),
            ("'age'", "row(s) 2", "out of range")),
    Request("serve-table-infinity", TABLE, lambda r: _with(r, "hours_per_week", 1, float("inf")),
            ("'hours_per_week'", "row(s) 1", "not a finite number")),
    Request("serve-table-minus-infinity", TABLE, lambda r: _with(r, "capital_gain", 3, float("-inf")),
            ("'capital_gain'", "row(s) 3", "-inf")),
    Request("serve-table-missing-column", TABLE, lambda r: _rows(r).drop(columns=["occupation"]),
            ("occupation",)),
    Request("serve-table-word-for-number", TABLE, lambda r: _with(r, "age", 0, "forty"), ("age",)),
    Request("serve-images-wrong-size", IMAGES, _images((3, 1, 16, 16)),
            ("(3, 1, 16, 16)", "(-1, 1, 8, 8)")),
    Request("serve-images-flattened", IMAGES, _images((3, 64)), ("(3, 64)", "(-1, 1, 8, 8)")),
    Request("serve-images-float-pixels", IMAGES, lambda r: _images((3, 1, 8, 8))(r) / 1.0,
            ("dtype of input float32", "uint8")),
    Request("serve-text-missing-column", TEXT, _texts(["fine"], column="review"), ("'text'",)),
    Request("serve-text-null", TEXT, _texts(["a fine film", None]), ("'text'", "row(s) [1]")),
    Request("serve-text-number", TEXT, _texts([5, "good"]), ("'text'", "row(s) [0]")),
]  # fmt: skip
