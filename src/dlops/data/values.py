"""One spelling per label, group or category value (True -> "True", 1 and 1.0 -> "1"), shared by the
split's strata and the tabular transform so that both read a value the same way."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

MISSING_GROUP = "<missing>"


def to_str(value: Any) -> str:
    """One spelling per value: True -> "True", 1 and 1.0 -> "1", "a" -> "a"."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def as_str(series: pd.Series) -> np.ndarray:
    """Object array of `to_str` spellings, None where missing (converts each distinct value once)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    spelled = np.array([*(to_str(u) for u in uniques), None], dtype=object)
    return spelled[codes]  # code -1 (missing) picks the trailing None


def filled(series: pd.Series) -> np.ndarray:
    values = as_str(series)
    values[pd.isna(values)] = MISSING_GROUP
    return values
