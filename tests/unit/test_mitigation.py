"""Reweighing and fair thresholds: numbers on small seeded data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlops.mitigation import FairThresholds, fit_thresholds, joint_groups, reweigh_weights, row_draws
from dlops.serving import _class_frame


def biased(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b"], n)
    y = (rng.random(n) < np.where(g == "a", 0.2, 0.5)).astype(int)
    s = np.clip(0.5 * y + 0.3 * (g == "b") + rng.normal(0, 0.25, n), 0, 1)
    return s, y, g


def test_reweighing_makes_the_label_independent_of_the_group() -> None:
    _, y, g = biased()
    w = reweigh_weights(y, g)
    rate = {k: np.average(y[g == k], weights=w[g == k]) for k in ("a", "b")}
    assert rate["a"] == pytest.approx(rate["b"], abs=1e-9) and rate["a"] == pytest.approx(y.mean())
    assert w.mean() == pytest.approx(1.0)
    assert np.unique(w).size == 4  # one weight per (group, label) cell


def test_joint_groups_names_the_intersection_and_the_missing_attribute() -> None:
    groups = {"sex": np.array(["F", "M"]), "race": np.array(["x", "y"])}
    assert list(joint_groups(groups, ["sex", "race"])) == ["F&x", "M&y"]
    with pytest.raises(KeyError, match=r"\['age'\] not in the data"):
        joint_groups(groups, ["age"])


def test_fair_thresholds_equalise_selection_rates_and_round_trip(tmp_path: Path) -> None:
    s, y, g = biased()
    before = {k: (s[g == k] > 0.5).mean() for k in ("a", "b")}
    assert before["b"] - before["a"] > 0.3
    fair = fit_thresholds(
        s, y, g, constraint="demographic_parity", objective="accuracy_score", attributes=["g"]
    )
    x = inputs(s)
    decided = fair.predict(s, g, x)
    after = {k: decided[g == k].mean() for k in ("a", "b")}
    assert abs(after["a"] - after["b"]) < 0.03
    fair.to_json(tmp_path / "t.json")
    again = FairThresholds.from_json(tmp_path / "t.json")
    assert (again.predict(s, g, x) == decided).all()
    with pytest.raises(ValueError, match=r"group\(s\) \['c'\] of g were not seen"):
        fair.predict(s[:2], np.array(["a", "c"]), x[:2])
    with pytest.raises(ValueError, match="3 input rows for 2 scores"):
        fair.predict(s[:2], g[:2], x[:3])


def inputs(s: np.ndarray) -> np.ndarray:
    """Stand-in model inputs (N, 3) float32, one distinct row per score."""
    return np.stack([s, s**2, np.arange(len(s))], axis=1).astype(np.float32)


def test_a_rows_draw_depends_on_its_input_alone() -> None:
    s, _, _ = biased(400)
    x = inputs(s)
    draws = row_draws(x)
    order = np.random.default_rng(1).permutation(400)
    assert (row_draws(x[order]) == draws[order]).all()  # not its position in the batch
    assert (row_draws(x.astype(np.float64)) == draws).all()  # not the array's float width
    assert (row_draws(torch.from_numpy(x)) == draws).all()  # nor a tensor rather than an array
    ids = np.arange(12).reshape(4, 3)
    assert (row_draws(ids.astype(np.int32)) == row_draws(ids)).all()  # token ids, any integer width
    assert 0.4 < draws.mean() < 0.6 and np.unique(draws).size == 400
    # a score that moves in its last digits (two kinds of CPU) leaves every draw where it was: the draw
    # never saw the score; one that moves an input redraws only that row
    moved = x.copy()
    moved[7, 0] = np.nextafter(moved[7, 0], np.float32(2))
    changed = np.flatnonzero(row_draws(moved) != draws)
    assert changed.tolist() == [7]


def test_served_frame_needs_the_sensitive_columns() -> None:
    s, y, g = biased(500)
    fair = fit_thresholds(
        s, y, g, constraint="demographic_parity", objective="accuracy_score", attributes=["g"]
    )
    proba = np.stack([1 - s, s], axis=1)
    x = inputs(s)
    out = _class_frame(proba, ["no", "yes"], fair, pd.DataFrame({"g": g}), x)
    assert list(out["prediction"] == "yes") == list(fair.predict(s, g, x) == 1)
    with pytest.raises(KeyError, match=r"fair thresholds per \['g'\]: input lacks \['g'\]"):
        _class_frame(proba, ["no", "yes"], fair, pd.DataFrame({"other": g}), x)
