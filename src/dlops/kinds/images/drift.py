"""Drift of a batch of images against the reference: PSI of the per-image mean pixel value (brightness)
and per-image standard deviation (contrast), pixels scaled to [0, 1]; the share of blank images
(constant, std == 0) is reported."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlops.evaluation.report import clean
from dlops.monitoring.drift import PSI_THRESHOLD, cell, psi, summary_markdown, table

_CHUNK = 256  # images per chunk when computing per-image statistics


def _image_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image mean and std of pixels scaled to [0, 1], and whether each image is blank (constant)."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {images.shape}")
    scale = 255.0 if np.issubdtype(images.dtype, np.integer) else 1.0
    means, stds, blank = [], [], []
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].reshape(min(_CHUNK, len(images) - start), -1)
        pixels = chunk.astype(np.float64) / scale
        means.append(pixels.mean(axis=1))
        stds.append(pixels.std(axis=1))
        blank.append(chunk.max(axis=1) == chunk.min(axis=1))  # exact, unlike a float std
    if not means:
        raise ValueError("image_drift needs at least one image in both batches")
    return np.concatenate(means), np.concatenate(stds), np.concatenate(blank)


def image_drift(
    reference: np.ndarray, current: np.ndarray, threshold: float = PSI_THRESHOLD
) -> dict[str, Any]:
    """PSI of per-image brightness (mean) and contrast (std), plus the share of blank images."""
    ref_mean, ref_std, ref_blank = _image_stats(np.asarray(reference))
    cur_mean, cur_std, cur_blank = _image_stats(np.asarray(current))
    mean_psi, std_psi = psi(ref_mean, cur_mean), psi(ref_std, cur_std)
    return {
        "kind": "image",
        "n_reference": len(ref_mean),
        "n_current": len(cur_mean),
        "threshold": clean(threshold),
        "mean_psi": clean(mean_psi),
        "std_psi": clean(std_psi),
        "mean_brightness_reference": clean(ref_mean.mean()),
        "mean_brightness_current": clean(cur_mean.mean()),
        "mean_contrast_reference": clean(ref_std.mean()),
        "mean_contrast_current": clean(cur_std.mean()),
        "blank_share_reference": clean(ref_blank.mean()),
        "blank_share_current": clean(cur_blank.mean()),
        "drifted": bool(mean_psi >= threshold or std_psi >= threshold),
    }


def summary(report: dict[str, Any]) -> str:
    """The Markdown summary of an `image_drift` report: brightness, contrast and blank images."""
    body = table(
        ["metric", "reference", "current"],
        [
            ["mean brightness", report["mean_brightness_reference"], report["mean_brightness_current"]],
            ["mean contrast (std)", report["mean_contrast_reference"], report["mean_contrast_current"]],
            ["blank share", report["blank_share_reference"], report["blank_share_current"]],
        ],
    )
    psis = f"Brightness PSI {cell(report['mean_psi'])}, contrast PSI {cell(report['std_psi'])}."
    return summary_markdown(report, [*body, "", psis])
