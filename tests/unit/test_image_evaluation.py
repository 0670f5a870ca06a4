"""Image evaluation on hand-computable cases: class recall, anomaly detection, Fréchet distance,
generator quality/coverage/memorisation, and reproducible figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dlops.evaluation.images import (
    anomaly_report,
    best_f1_threshold,
    class_coverage,
    class_recall_report,
    frechet_distance,
    generator_report,
    memorization_ratio,
    nearest_distances,
    reconstruction_gap,
    save_image_grid,
    save_reconstruction_grid,
)
from dlops.kinds.images.evaluate import attribution_grid


# ------------------------------------------------------------------------------------------ classes
def test_class_recall_on_a_tiny_confusion() -> None:
    # class a: 2/2 right, class b: 1/2, class c: 1/4
    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 0, 2, 0, 1, 1])
    metrics, worst = class_recall_report(y_true, y_pred, ["a", "b", "c"])
    assert metrics == {
        "test/recall/a": 1.0,
        "test/recall/b": 0.5,
        "test/recall/c": 0.25,
        "bias/mean_class_recall": round(1.75 / 3, 6),
        "bias/worst_class_recall": 0.25,
        "bias/class_recall_gap": round(1.75 / 3 - 0.25, 6),
    }
    assert worst == "c"


def test_absent_class_has_no_recall_and_is_left_out_of_the_summary() -> None:
    metrics, worst = class_recall_report(np.array([0, 0, 1]), np.array([0, 1, 1]), ["<=50K", ">50K", "x"])
    assert metrics["test/recall/le50K"] == 0.5 and metrics["test/recall/gt50K"] == 1.0
    assert metrics["test/recall/x"] is None
    assert metrics["bias/worst_class_recall"] == 0.5 and metrics["bias/mean_class_recall"] == 0.75
    assert worst == "<=50K"


# ------------------------------------------------------------------------------------------ anomalies
VAL_S = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
VAL_Y = np.array([0, 0, 0, 1, 1])


def test_perfectly_separating_scores() -> None:
    test_s = np.array([0.05, 0.25, 0.4, 0.6, 0.8])
    test_y = np.array([0, 0, 0, 1, 1])
    m = anomaly_report(VAL_S, VAL_Y, test_s, test_y)
    assert m["anomaly/threshold"] == 0.5  # midway between 0.3 (last normal) and 0.7 (first anomaly)
    assert m["anomaly/val_f1"] == 1.0
    assert m["test/anomaly_roc_auc"] == 1.0 and m["test/anomaly_average_precision"] == 1.0
    assert m["test/anomaly_precision"] == 1.0 and m["test/anomaly_recall"] == 1.0
    assert m["test/anomaly_f1"] == 1.0


def test_reversed_scores() -> None:
    test_s = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    test_y = np.array([0, 0, 0, 1, 1])
    m = anomaly_report(VAL_S, VAL_Y, test_s, test_y, prefix="holdout")
    assert m["holdout/anomaly_roc_auc"] == 0.0
    # nothing below 0.5 is flagged: the three normals are, the two anomalies are not
    assert m["holdout/anomaly_precision"] == 0.0 and m["holdout/anomaly_recall"] == 0.0
    assert m["holdout/anomaly_f1"] == 0.0
    assert m["holdout/anomaly_average_precision"] < 0.5


def test_single_class_splits_give_none_not_nan() -> None:
    m = anomaly_report(VAL_S, VAL_Y, np.array([0.1, 0.9]), np.array([0, 0]))
    assert m["test/anomaly_roc_auc"] is None and m["test/anomaly_average_precision"] is None
    assert m["test/anomaly_recall"] is None  # no anomalies to find
    assert m["test/anomaly_precision"] == 0.0  # 0.9 flagged, wrongly
    no_val_anomalies = anomaly_report(VAL_S, np.zeros(5), VAL_S, VAL_Y)
    assert no_val_anomalies["anomaly/threshold"] is None and no_val_anomalies["test/anomaly_f1"] is None
    assert no_val_anomalies["test/anomaly_roc_auc"] == 1.0


def test_best_f1_threshold_trades_precision_for_recall() -> None:
    # flag >= 0.8: P 1, R 1/2, F1 2/3; >= 0.6: P 2/3, R 1, F1 4/5 (best); >= 0.2: P 1/2, R 1, F1 2/3
    scores = np.array([0.2, 0.6, 0.7, 0.8])
    flags = np.array([0, 1, 0, 1])
    assert best_f1_threshold(scores, flags) == pytest.approx(0.4)
    assert best_f1_threshold(np.array([0.3, 0.3]), np.array([1, 1])) == 0.3  # everything flagged


def test_reconstruction_gap_is_relative() -> None:
    assert reconstruction_gap(0.02, 0.03) == {
        "overfit/reconstruction_train": 0.02,
        "overfit/reconstruction_val": 0.03,
        "overfit/reconstruction_gap": 0.5,
    }
    assert reconstruction_gap(0.0, 0.1)["overfit/reconstruction_gap"] is None


# ------------------------------------------------------------------------------------------ Fréchet
def test_frechet_distance_of_a_set_with_itself_is_zero() -> None:
    feats = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_shifted_identity_gaussians_is_the_squared_shift() -> None:
    rng = np.random.default_rng(1)
    shift = np.array([1.0, -2.0, 0.5, 0.0])  # ||m||^2 = 5.25
    a = rng.normal(size=(20_000, 4))
    b = rng.normal(size=(20_000, 4)) + shift
    assert frechet_distance(a, b) == pytest.approx(5.25, abs=0.1)


def test_frechet_distance_of_known_covariances() -> None:
    # same mean, covariances I and 4I in D dims: tr(I + 4I - 2 * 2I) = D
    rng = np.random.default_rng(2)
    a = rng.normal(size=(20_000, 3))
    b = 2.0 * rng.normal(size=(20_000, 3))
    assert frechet_distance(a, b) == pytest.approx(3.0, abs=0.15)


def test_frechet_distance_is_finite_for_singular_covariances() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 32))  # fewer samples than dimensions: rank-deficient covariance
    b = rng.normal(size=(6, 32))
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0
    assert frechet_distance(a[:, :1], b[:, :1]) >= 0.0  # D = 1


# ------------------------------------------------------------------------------------------ generators
def _image_sets(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """train, held-out, and fresh images from one distribution, (N, 1, 8, 8) in [0, 1]."""
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(size=(n, 1, 8, 8)) for n in (400, 100, 100))  # type: ignore[return-value]


def test_generator_report_perfect_collapsed_and_memorizing() -> None:
    train, heldout, fresh = _image_sets()
    k = 10
    labels = np.repeat(np.arange(k), 10)  # (100,)
    rng = np.random.default_rng(5)
    real_feats = rng.normal(size=(300, 4))

    perfect = generator_report(
        labels, labels, k, rng.normal(size=(100, 4)), real_feats, fresh, train, heldout
    )
    assert perfect["test/sample_accuracy"] == 1.0
    assert perfect["generate/class_coverage"] == 1.0
    assert perfect["generate/frechet_distance"] < 0.5
    assert 0.85 < perfect["generate/memorization_ratio"] < 1.15

    collapsed = generator_report(
        labels,
        np.zeros(100, dtype=int),
        k,
        rng.normal(size=(100, 4)) + 3.0,
        real_feats,
        fresh,
        train,
        heldout,
    )
    assert collapsed["test/sample_accuracy"] == 0.1
    assert collapsed["generate/class_coverage"] == 0.1
    assert collapsed["generate/frechet_distance"] > 10 * perfect["generate/frechet_distance"]

    memorizing = generator_report(
        labels, labels, k, real_feats[:100], real_feats, train[:100], train, heldout
    )
    assert memorizing["generate/memorization_ratio"] == 0.0  # every copy is found among all training images
    partly = np.concatenate([train[:60], fresh[:40]])
    assert memorization_ratio(partly, train, heldout) < 1e-6  # the median sample is a copy (round-off > 0)

    copies_of_heldout = generator_report(
        labels, labels, k, real_feats[:100], real_feats, heldout, train, heldout
    )
    assert copies_of_heldout["generate/memorization_ratio"] == 1.0  # exactly as close as the held-out images
    assert set(memorizing) == {
        "test/sample_accuracy",
        "generate/class_coverage",
        "generate/frechet_distance",
        "generate/memorization_ratio",
    }


def test_heldout_images_found_in_training_give_no_ratio() -> None:
    train, heldout, fresh = _image_sets()
    assert memorization_ratio(fresh, np.concatenate([train, heldout]), heldout) is None


def test_memorization_ratio_is_seeded_when_heldout_is_subsampled(monkeypatch: pytest.MonkeyPatch) -> None:
    import dlops.evaluation.images as images

    train, heldout, fresh = _image_sets()
    monkeypatch.setattr(images, "HELDOUT_QUERIES", 30)
    assert memorization_ratio(fresh, train, heldout, seed=1) == memorization_ratio(
        fresh, train, heldout, seed=1
    )
    assert memorization_ratio(fresh, train, heldout, seed=1) != memorization_ratio(
        fresh, train, heldout, seed=2
    )


def test_class_coverage_is_over_the_sampled_classes() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert class_coverage(labels, np.array([0, 0, 1, 0, 1, 1]), 3) == pytest.approx(
        2 / 3
    )  # 1 at 1/2, 2 at 0/2
    assert class_coverage(labels, np.zeros(6, dtype=int), 5) == pytest.approx(1 / 3)  # collapsed onto class 0
    assert class_coverage(labels[2:], labels[2:], 10) == 1.0  # classes never sampled do not count


def test_nearest_distances_match_brute_force_and_find_exact_copies() -> None:
    rng = np.random.default_rng(0)
    queries, reference = rng.normal(size=(37, 5)), rng.normal(size=(23, 5))
    brute = np.sqrt(((queries[:, None, :] - reference[None, :, :]) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(nearest_distances(queries, reference), brute, rtol=1e-7)
    pixels = rng.integers(0, 256, size=(50, 64), dtype=np.uint8)  # uint8 images: searched in float32
    found = nearest_distances(pixels[[3, 17]], pixels)
    assert found.dtype == np.float64 and np.all(found < 1e-2)  # a copy is at distance ~0
    noisy = nearest_distances(pixels[:5].astype(np.float32) + 1.0, pixels)
    np.testing.assert_allclose(noisy, 8.0, rtol=1e-5)  # +1 on each of 64 pixels: sqrt(64)


# ------------------------------------------------------------------------------------------ figures
class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, num_classes)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))  # (B, K)
        loss = None if targets is None else nn.functional.cross_entropy(logits, targets)
        return logits, loss


def _images(n: int = 6, c: int = 1) -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(n, c, 8, 8))


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_is_written_and_byte_identical(tmp_path: Path, channels: int) -> None:
    images = _images(12, channels)
    titles = [f"class {i % 3}" for i in range(12)]
    first = save_image_grid(images, tmp_path / "a.png", ncol=5, titles=titles)
    second = save_image_grid(images, tmp_path / "b.png", ncol=5, titles=titles)
    assert first.stat().st_size > 0
    assert first.read_bytes() == second.read_bytes()


def test_reconstruction_grid_is_written_and_byte_identical(tmp_path: Path) -> None:
    originals = _images(7)
    recon = (originals * 0.9).clip(0, 1)
    first = save_reconstruction_grid(originals, recon, tmp_path / "a.png", ncol=4)
    second = save_reconstruction_grid(originals, recon, tmp_path / "b.png", ncol=4)
    assert first.stat().st_size > 0
    assert first.read_bytes() == second.read_bytes()
    with pytest.raises(ValueError, match="differ in shape"):
        save_reconstruction_grid(originals, recon[:3], tmp_path / "c.png")


def test_attribution_grid_runs_on_a_tiny_cnn(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyCNN().train()
    x = torch.as_tensor(_images(3), dtype=torch.float32)
    y = torch.tensor([0, 1, 2])
    first = attribution_grid(model, x, y, tmp_path / "a.png", steps=8)
    second = attribution_grid(model, x, y, tmp_path / "b.png", steps=8)
    assert first.stat().st_size > 0
    assert first.read_bytes() == second.read_bytes()
    assert model.training  # mode restored
