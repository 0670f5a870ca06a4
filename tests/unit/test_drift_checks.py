"""The drift check of new batches for text and images, loaded through the batch loaders: a shifted batch
is flagged, an unshifted one is not (the table's case runs in the scheduled-retraining test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from dlops.batches import load_batch
from dlops.intake import drift_report
from dlops.kinds import kind_of
from dlops.kinds.text.reviews import generate_reviews
from dlops.kinds.text.tokenizer import WordTokenizer
from dlops.params import TokenizerConfig, load_params, paths

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def params():  # type: ignore[no-untyped-def]
    return load_params(REPO / "params.yaml")


def test_text_drift_flags_new_words_and_not_next_week(params, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    task = params.task("text").model_copy(
        update={"ingest": params.task("text").ingest.model_copy(update={"rows": 2000})}
    )
    reference = generate_reviews(task.ingest)
    p = paths(tmp_path)
    p.processed("text").mkdir(parents=True)
    WordTokenizer.fit(reference["text"].tolist(), TokenizerConfig()).to_json(
        p.processed("text") / "tokenizer.json"
    )
    quiet = load_batch("text", task, {"rows": 1000}, "2026-11-30", tmp_path)
    new_words = load_batch(
        "text", task, {"rows": 1000, "shift": {"novel_words": 1.0}}, "2026-11-30", tmp_path
    )
    calm = drift_report(task, reference, quiet, p, 0.2)
    assert not calm["drifted"] and calm["oov_rise"] < 0.02
    drifted = drift_report(task, reference, new_words, p, 0.2)
    assert drifted["drifted"] and drifted["oov_rise"] > 0.1
    assert quiet.frame["source"].str.startswith(quiet.id).all()  # batch rows say where they came from


def test_image_drift_flags_darker_images_and_not_the_same_kind(params, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    task = params.task("images")
    reference = kind_of(task).load(task, tmp_path)
    digits = load_digits()
    rng = np.random.default_rng(0)
    pick = rng.choice(len(digits.images), 600, replace=False)
    pixels = np.rint(digits.images[pick] * (255 / 16)).astype(np.uint8)
    np.savez(tmp_path / "same.npz", x=pixels, y=digits.target[pick])
    np.savez(tmp_path / "dark.npz", x=(pixels // 3).astype(np.uint8), y=digits.target[pick])
    p = paths(tmp_path)
    same = load_batch("images", task, {"source": "npz", "path": "same.npz"}, "2026-11-30", tmp_path)
    dark = load_batch("images", task, {"source": "npz", "path": "dark.npz"}, "2026-11-30", tmp_path)
    assert not drift_report(task, reference, same, p, 0.2)["drifted"]
    report = drift_report(task, reference, dark, p, 0.2)
    assert report["drifted"] and report["mean_psi"] > 0.2
    assert report["mean_brightness_current"] < report["mean_brightness_reference"] / 2
