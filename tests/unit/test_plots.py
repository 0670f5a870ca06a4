"""Plot files exist, are byte-identical across identical runs, and the DVC data files are valid JSON/CSV."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlops.evaluation.fairness import fairness_report
from dlops.evaluation.plots import (
    MAX_ROC_POINTS,
    plot_group_bars,
    plot_roc,
    roc_points,
    write_plot_data,
    write_plots,
)


def _case(n: int = 400, k: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba, [f"class{i}" for i in range(k)]


HISTORY: dict[str, Any] = {
    "epochs": [
        {
            "epoch": e,
            "train/loss": 1 / e,
            "val/loss": 1 / e + 0.02 * e,
            "train/accuracy": 0.5 + 0.04 * e,
            "val/accuracy": 0.5 + 0.03 * e,
            "lr": 1e-3,
        }
        for e in range(1, 7)
    ],
    "best_epoch": 4,
    "stopped_early": False,
}


@functools.cache
def _tables(k: int) -> dict[str, list[dict[str, Any]]]:
    y, proba, _ = _case(k=k)
    groups = {
        "sex": np.where(np.arange(y.size) % 3 == 0, "f", "m"),
        "tiny": np.array(["u"] * 395 + ["v"] * 5),
    }
    return fairness_report(y, proba.argmax(axis=1), groups, num_classes=k)[1]


def _write_all(out: Path, k: int = 2) -> list[Path]:
    y, proba, names = _case(k=k)
    return write_plot_data(out, y, proba, names, HISTORY) + write_plots(
        out, y, proba, names, HISTORY, _tables(k)
    )


@pytest.mark.parametrize("k", [2, 3])
def test_outputs_exist_and_are_deterministic(tmp_path: Path, k: int) -> None:
    first = _write_all(tmp_path / "a", k)
    second = _write_all(tmp_path / "b", k)
    names = sorted(p.name for p in first)
    assert names == sorted(
        [
            "roc.json",
            "calibration.json",
            "learning_curve.json",
            "predictions.csv",
            "confusion_matrix.png",
            "roc.png",
            "calibration.png",
            "fairness_groups.png",
            "learning_curves.png",
        ]
    )
    for a, b in zip(first, second, strict=True):
        assert a.stat().st_size > 0
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between identical runs"
    png = (tmp_path / "a" / "roc.png").read_bytes()
    assert png.startswith(b"\x89PNG") and b"Matplotlib" not in png


def test_data_files_are_valid_for_dvc(tmp_path: Path) -> None:
    y, proba, names = _case(n=2000)
    write_plot_data(tmp_path, y, proba, names, HISTORY)
    for name in ("roc.json", "calibration.json", "learning_curve.json"):
        text = (tmp_path / name).read_text()
        json.dumps(json.loads(text), allow_nan=False)  # no NaN/Infinity tokens survived
        assert "NaN" not in text and "Infinity" not in text
    roc = json.loads((tmp_path / "roc.json").read_text())["roc"]
    assert 2 < len(roc) <= MAX_ROC_POINTS
    assert set(roc[0]) == {"fpr", "tpr", "threshold"}
    assert roc[0]["threshold"] is None  # scikit-learn's +inf
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0) and (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    history = json.loads((tmp_path / "learning_curve.json").read_text())["history"]
    assert history[0] == {
        "epoch": 1,
        "train/loss": 1.0,
        "val/loss": 1.02,
        "train/accuracy": 0.54,
        "val/accuracy": 0.53,
        "lr": 0.001,
    }
    calibration = json.loads((tmp_path / "calibration.json").read_text())["calibration"]
    assert sum(row["count"] for row in calibration) == y.size
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    assert lines[0] == "actual,predicted" and len(lines) == y.size + 1


def test_undefined_curves(tmp_path: Path) -> None:
    y = np.zeros(4, dtype=int)
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    assert roc_points(y, proba) == []
    assert plot_roc(tmp_path, y, proba) is None
    assert plot_group_bars(tmp_path, {}) is None
    written = write_plot_data(tmp_path, y, proba, ["no", "yes"], {"epochs": []})
    assert json.loads((tmp_path / "roc.json").read_text()) == {"roc": []}
    assert len(written) == 4
