"""The pyfuncs' own input checks (what `mlflow models serve` runs after the signature's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlops.serving import _pixels, _texts


def test_pixels_take_uint8_or_unit_floats_of_the_model_shape() -> None:
    assert float(_pixels(np.full((2, 1, 4, 4), 255, np.uint8), [1, 4, 4]).max()) == 1.0
    assert float(_pixels(np.full((2, 1, 4, 4), 0.5, np.float64), [1, 4, 4]).min()) == 0.5


@pytest.mark.parametrize(
    ("array", "said"),
    [
        (np.zeros((2, 16)), "input shape (2, 16); this model takes (N, 1, 4, 4)"),
        (np.full((3, 1, 4, 4), 200.0), "row(s) [0, 1, 2]: pixel values outside [0, 1]"),
        (np.where(np.arange(32).reshape(2, 1, 4, 4) == 20, np.nan, 0.5), "row(s) [1]"),
        (np.full((1, 1, 4, 4), "x"), "dtype <U1"),
    ],
)
def test_pixels_refuse_what_would_score_as_something_else(array: np.ndarray, said: str) -> None:
    with pytest.raises(ValueError) as refused:
        _pixels(array, [1, 4, 4])
    assert said in str(refused.value)


def test_texts_refuse_a_missing_column_and_values_that_are_not_text() -> None:
    assert _texts(pd.DataFrame({"text": ["a", "b"]})) == ["a", "b"]
    with pytest.raises(ValueError, match=r"lacks column 'text' \(got \['review'\]\)"):
        _texts(pd.DataFrame({"review": ["a"]}))
    with pytest.raises(ValueError, match=r"row\(s\) \[1, 2\]: NoneType values"):
        _texts(pd.DataFrame({"text": ["a", None, 3]}))


def test_a_served_model_requires_the_locked_versions_of_what_its_code_imports() -> None:
    """requirements.txt of a registered model: exact versions, the same as requirements/lock.txt (which
    `make` installs from); torch without its local label (+cpu is on no public index)."""
    from dlops.tracking.promotion import _pip_requirements

    lock = Path(__file__).resolve().parents[2] / "requirements/lock.txt"
    locked = dict(
        line.lower().replace("_", "-").split("==") for line in lock.read_text().splitlines() if "==" in line
    )
    required = dict(line.split("==") for line in _pip_requirements())
    assert {"torch", "pandas", "numpy", "pyarrow", "pydantic", "mlflow"} <= set(required)
    for name, version in required.items():
        assert locked[name] == version, (name, version, locked.get(name))
