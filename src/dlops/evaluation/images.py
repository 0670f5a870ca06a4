"""Evaluation of the image families: per-class recall, anomaly scores, generated samples, figures.

Pure functions over numpy arrays returning flat JSON-safe metric dicts (floats rounded to 6 decimals,
None where undefined, never NaN). Figures are drawn like every other project figure
(`dlops.evaluation.plots.png_figure`): byte-identical PNGs for identical input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn import metrics as skm

from dlops.evaluation.plots import png_figure
from dlops.evaluation.report import clean, unique_key_parts

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

Metrics = dict[str, Any]  # values: float | int | None
DISTANCE_WORKING_MB = 64  # scikit-learn's working memory for the nearest-image search
HELDOUT_QUERIES = 1_000  # held-out images whose nearest-training-image distance sets the baseline


# ------------------------------------------------------------------------------------------ classes
def class_recall_report(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], prefix: str = "test"
) -> tuple[Metrics, str | None]:
    """Per-class recall and the bias summary over it; returns (metrics, name of the worst class).

    Keys: `<prefix>/recall/<class>` (class names made key-safe), `bias/mean_class_recall`,
    `bias/worst_class_recall`, `bias/class_recall_gap` (= mean - worst). A class absent from y_true has
    recall None and is left out of mean and worst, as in `classification_metrics`, whose
    `<prefix>/worst_class_recall` equals `bias/worst_class_recall` here. The worst class (first in
    `classes` order on ties) is returned beside the dict because it is a name, not a number; it is None
    when no class is present.
    """
    y = np.asarray(y_true).ravel()
    pred = np.asarray(y_pred).ravel()
    if y.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y.shape} vs {pred.shape}")
    recall = skm.recall_score(
        y, pred, labels=list(range(len(classes))), average=None, zero_division=np.nan
    )  # (K,), NaN for an absent class
    present = np.bincount(y.astype(np.int64), minlength=len(classes))[: len(classes)] > 0
    out: Metrics = {
        f"{prefix}/recall/{name}": clean(r) for name, r in zip(unique_key_parts(classes), recall, strict=True)
    }
    if not present.any():
        out |= {
            "bias/mean_class_recall": None,
            "bias/worst_class_recall": None,
            "bias/class_recall_gap": None,
        }
        return out, None
    worst = int(np.flatnonzero(present)[np.argmin(recall[present])])
    mean = float(recall[present].mean())
    out["bias/mean_class_recall"] = clean(mean)
    out["bias/worst_class_recall"] = clean(recall[worst])
    out["bias/class_recall_gap"] = clean(mean - recall[worst])
    return out, classes[worst]


# ------------------------------------------------------------------------------------------ anomalies
def anomaly_report(
    val_scores: np.ndarray,
    val_is_anomaly: np.ndarray,
    test_scores: np.ndarray,
    test_is_anomaly: np.ndarray,
    prefix: str = "test",
) -> Metrics:
    """Anomaly detection quality of a score (higher = more anomalous, e.g. reconstruction error).

    Keys: `<prefix>/anomaly_roc_auc`, `<prefix>/anomaly_average_precision` (threshold-free, on the test
    split; None when the test split holds only one class); `anomaly/threshold`, chosen on the VALIDATION
    split as the one maximising F1 there (an example is flagged when score >= threshold; the threshold is
    placed midway between the best-F1 cut-off score and the next lower validation score, so the same
    validation examples are flagged but the test split gets a margin); `anomaly/val_f1` (F1 on
    validation at that threshold); `<prefix>/anomaly_precision`, `<prefix>/anomaly_recall`,
    `<prefix>/anomaly_f1` on the test split at that threshold. The threshold and the three test values
    are None when validation has no anomalies; precision is None when nothing is flagged and recall when
    the test split has no anomalies (F1 is then 0, or None when there is neither).
    """
    val_s, val_y = _scores_and_flags(val_scores, val_is_anomaly, "val")
    test_s, test_y = _scores_and_flags(test_scores, test_is_anomaly, prefix)
    out: Metrics = {
        f"{prefix}/anomaly_roc_auc": None,
        f"{prefix}/anomaly_average_precision": None,
        "anomaly/threshold": None,
        "anomaly/val_f1": None,
        f"{prefix}/anomaly_precision": None,
        f"{prefix}/anomaly_recall": None,
        f"{prefix}/anomaly_f1": None,
    }
    if np.unique(test_y).size == 2:
        out[f"{prefix}/anomaly_roc_auc"] = clean(skm.roc_auc_score(test_y, test_s))
        out[f"{prefix}/anomaly_average_precision"] = clean(skm.average_precision_score(test_y, test_s))
    else:
        log.warning("%s/anomaly_roc_auc is None: the %s split holds one class only", prefix, prefix)
    threshold = best_f1_threshold(val_s, val_y)
    if threshold is None:
        log.warning("anomaly/threshold is None: the validation split holds no anomalies")
        return out
    out["anomaly/threshold"] = clean(threshold)
    out["anomaly/val_f1"] = clean(skm.f1_score(val_y, val_s >= threshold, zero_division=np.nan))
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        test_y, test_s >= threshold, average="binary", zero_division=np.nan
    )
    out[f"{prefix}/anomaly_precision"] = clean(precision)
    out[f"{prefix}/anomaly_recall"] = clean(recall)
    out[f"{prefix}/anomaly_f1"] = clean(f1)
    return out


def best_f1_threshold(scores: np.ndarray, is_anomaly: np.ndarray) -> float | None:
    """The cut-off maximising F1 of flagging `score >= cut-off` (the highest such cut-off on ties), moved
    down to the midpoint with the next lower score; None when there are no anomalies. O(N log N)."""
    s, y = _scores_and_flags(scores, is_anomaly, "scores")
    if not y.any():
        return None
    order = np.argsort(-s, kind="stable")
    s_desc = s[order]  # (N,) descending
    tp = np.cumsum(y[order])  # anomalies among the k + 1 highest scores
    last = np.flatnonzero(np.append(s_desc[1:] != s_desc[:-1], True))  # last position of each distinct score
    f1 = 2 * tp[last] / (last + 1 + y.sum())  # 2TP / (2TP + FP + FN) = 2TP / (flagged + anomalies)
    best = int(np.argmax(f1))
    cutoff = float(s_desc[last[best]])
    if best + 1 == last.size:  # every example flagged: nothing lower to meet halfway
        return cutoff
    return (cutoff + float(s_desc[last[best] + 1])) / 2


def _scores_and_flags(scores: np.ndarray, is_anomaly: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_anomaly).ravel().astype(np.int64)
    if s.shape != y.shape or s.size == 0:
        raise ValueError(
            f"{name}: expected non-empty scores and flags of one length; got {s.shape}, {y.shape}"
        )
    if not np.isfinite(s).all():
        raise ValueError(f"{name}: anomaly scores hold NaN or infinite values")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name}: anomaly flags must be 0/1 or bool")
    return s, y


def reconstruction_gap(train_error: float, val_error: float) -> Metrics:
    """`overfit/reconstruction_train`, `overfit/reconstruction_val` and `overfit/reconstruction_gap`
    = (val - train) / train, the relative excess of the validation error (None when train is 0)."""
    gap = (val_error - train_error) / train_error if train_error > 0 else None
    return {
        "overfit/reconstruction_train": clean(train_error),
        "overfit/reconstruction_val": clean(val_error),
        "overfit/reconstruction_gap": clean(gap),
    }


# ------------------------------------------------------------------------------------------ generators
def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D):

        ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    Computed in whatever feature space it is given; in this project that is the penultimate layer of
    the project's own judge CNN, NOT Inception-v3, so values are not "FID" and are comparable only
    between runs that use the same judge. tr((S_a S_b)^(1/2)) is taken as the sum of the square roots of
    the eigenvalues of the symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2) (same eigenvalues), with tiny
    negative eigenvalues from round-off clipped to 0: real and stable also for singular covariances
    (fewer samples than dimensions), where `scipy.linalg.sqrtm` needs a diagonal eps and a real part.
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"expected feature sets (N>=2, D) and (M>=2, D); got {a.shape} and {b.shape}")
    mean_term = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))  # (D, D)
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0.0)
    trace_term = float(np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.sqrt(cross).sum())
    return max(0.0, mean_term + trace_term)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0.0))) @ vectors.T


def generator_report(
    sample_labels: np.ndarray,
    judge_pred: np.ndarray,
    num_classes: int,
    sample_feats: np.ndarray,
    real_feats: np.ndarray,
    sample_images: np.ndarray,
    train_images: np.ndarray,
    heldout_images: np.ndarray,
    seed: int = 0,
) -> Metrics:
    """Quality, diversity and originality of class-conditional samples, judged by the project's CNN.

    - `test/sample_accuracy`: share of samples the judge classifies as the class they were drawn for.
    - `generate/class_coverage`: share of the classes sampled (those in `sample_labels`) for which the
      judge predicts that class for at least half of that class's samples. A mode-collapsed generator
      (whatever class is asked for, it draws the same few) scores (number of classes it still draws) /
      (number of classes sampled); a class-conditional one that ignores its label scores ~1/K.
    - `generate/frechet_distance`: `frechet_distance(sample_feats, real_feats)` in the judge's feature
      space (real_feats: the real test images); not FID.
    - `generate/memorization_ratio`: how much closer samples are to the training images than unseen real
      images are, in flattened pixels: the median over samples of the L2 distance to the nearest
      training image, divided by the same median for held-out images (a seeded subset of at most
      `HELDOUT_QUERIES` of them) against the same training images. About 1: samples are no closer to the
      images trained on than unseen images from the same distribution are; well below 1: copying
      (an exact copy is at distance 0); above 1: samples are further from the data than real images
      (noisy, off-distribution). None when the held-out median is 0 (held-out images repeated in train).
      All training images are searched, so every copy is found: a reference subset of the training
      images would miss the copies of the images left out of it.
    """
    labels = np.asarray(sample_labels).ravel().astype(np.int64)
    pred = np.asarray(judge_pred).ravel().astype(np.int64)
    if labels.shape != pred.shape or labels.size == 0:
        raise ValueError(
            f"sample_labels and judge_pred: non-empty and one length; got {labels.shape}, {pred.shape}"
        )
    return {
        "test/sample_accuracy": clean(np.mean(labels == pred)),
        "generate/class_coverage": clean(class_coverage(labels, pred, num_classes)),
        "generate/frechet_distance": clean(frechet_distance(sample_feats, real_feats)),
        "generate/memorization_ratio": clean(
            memorization_ratio(sample_images, train_images, heldout_images, seed)
        ),
    }


def class_coverage(sample_labels: np.ndarray, judge_pred: np.ndarray, num_classes: int) -> float:
    """Share of the sampled classes that the judge recognises in at least half of their samples (see
    generator_report); labels and predictions are class indices in [0, num_classes)."""
    drawn = np.bincount(sample_labels, minlength=num_classes)
    hits = np.bincount(sample_labels[sample_labels == judge_pred], minlength=num_classes)
    sampled = drawn > 0
    return float(np.mean(2 * hits[sampled] >= drawn[sampled]))


def memorization_ratio(
    sample_images: np.ndarray, train_images: np.ndarray, heldout_images: np.ndarray, seed: int = 0
) -> float | None:
    """Median distance from a sample to its nearest training image / the same median for held-out
    images (a `seed`-drawn subset of at most `HELDOUT_QUERIES`); see generator_report."""
    samples, train, heldout = _flat(sample_images), _flat(train_images), _flat(heldout_images)
    if not samples.shape[1] == train.shape[1] == heldout.shape[1]:
        raise ValueError(f"image sizes differ: {samples.shape}, {train.shape}, {heldout.shape}")
    if len(samples) == 0 or len(heldout) == 0:
        raise ValueError("no samples or no held-out images")
    rng = np.random.default_rng(seed)
    queries = heldout[
        np.sort(rng.choice(len(heldout), size=min(len(heldout), HELDOUT_QUERIES), replace=False))
    ]
    samples_to_train = float(np.median(nearest_distances(samples, train)))
    heldout_to_train = float(np.median(nearest_distances(queries, train)))
    if heldout_to_train == 0.0:
        log.warning("generate/memorization_ratio is None: most held-out images also occur in training")
        return None
    return samples_to_train / heldout_to_train


def nearest_distances(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """L2 distance from each query row (N, D) to its nearest reference row (M, D), as (N,) float64:
    scikit-learn's exact search (`pairwise_distances_argmin_min`, its chunked and parallel ArgKmin),
    holding at most `DISTANCE_WORKING_MB` of distances at once whatever N and M are. Pixels stay float32
    (a 60,000-image set is not copied into float64); float64 input is searched in float64."""
    from sklearn import config_context
    from sklearn.metrics import pairwise_distances_argmin_min

    if len(reference) == 0:
        raise ValueError("no reference rows to measure distances to")
    dtype = np.result_type(queries.dtype, reference.dtype, np.float32)
    with config_context(working_memory=DISTANCE_WORKING_MB):
        _, distances = pairwise_distances_argmin_min(queries.astype(dtype), reference.astype(dtype))
    return np.asarray(distances, dtype=np.float64)


def _flat(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    return x.reshape(len(x), -1)  # (N, C*H*W), dtype kept: cast to float64 chunk by chunk


# ------------------------------------------------------------------------------------------ figures
def save_image_grid(
    images: np.ndarray, path: Path, ncol: int = 10, titles: Sequence[str] | None = None
) -> Path:
    """A grid of images (N, C, H, W) in [0, 1] (C = 1 grey, 3 RGB), `ncol` per row, optional titles."""
    x = _as_images(images)
    if titles is not None and len(titles) != len(x):
        raise ValueError(f"{len(titles)} titles for {len(x)} images")
    ncol = max(1, min(ncol, len(x)))
    nrow = -(-len(x) // ncol)
    path = Path(path)
    with png_figure(path, (1.2 * ncol, 1.2 * nrow + (0.2 * nrow if titles else 0.0))) as fig:
        axes = fig.subplots(nrow, ncol, squeeze=False)
        for i, ax in enumerate(axes.ravel()):
            ax.set_axis_off()
            if i < len(x):
                show_image(ax, x[i])
                if titles is not None:
                    ax.set_title(titles[i], fontsize="small")
    return path


def save_reconstruction_grid(
    originals: np.ndarray, reconstructions: np.ndarray, path: Path, ncol: int = 10
) -> Path:
    """Originals and their reconstructions (N, C, H, W) in [0, 1]: for each group of `ncol` images a row of
    originals directly above the row of their reconstructions."""
    a = _as_images(originals)
    b = _as_images(reconstructions)
    if a.shape != b.shape:
        raise ValueError(f"originals and reconstructions differ in shape: {a.shape} vs {b.shape}")
    ncol = max(1, min(ncol, len(a)))
    groups = -(-len(a) // ncol)
    path = Path(path)
    with png_figure(path, (1.2 * ncol + 0.8, 2.4 * groups)) as fig:
        axes = fig.subplots(2 * groups, ncol, squeeze=False)
        for g in range(groups):
            for row, (images, label) in enumerate(((a, "original"), (b, "reconstruction"))):
                for j in range(ncol):
                    ax = axes[2 * g + row, j]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    i = g * ncol + j
                    if i < len(images):
                        show_image(ax, images[i])
                    else:
                        ax.set_axis_off()
                axes[2 * g + row, 0].set_ylabel(label, fontsize="small")
    return path


def _as_images(images: Any) -> np.ndarray:
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) == 0:
        raise ValueError(f"expected images (N>=1, C in {{1, 3}}, H, W); got {x.shape}")
    return x.clip(0.0, 1.0)


def show_image(ax: Axes, image: np.ndarray) -> None:
    """One image (C, H, W) in [0, 1]: grey for one channel, RGB for three."""
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
