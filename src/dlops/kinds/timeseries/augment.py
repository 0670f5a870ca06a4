"""Augmentation of a series task's training windows: Gaussian jitter on the scaled input values and one
random amplitude factor per window (inputs and targets alike), drawn from the caller's generator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

SeriesAugment = Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor]]


def make_series_augment(cfg: Any) -> SeriesAugment | None:
    """Jitter (`jitter_std`) on feature 0 of windows (B, L, F) and a factor 1 + N(0, `scale_std`) on
    each window's values and targets (B, H); None when both are off. Covariates are left as they are."""
    if cfg.jitter_std == 0 and cfg.scale_std == 0:
        return None

    def augment(x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        values = x[..., 0]  # (B, L)
        if cfg.scale_std > 0:
            factor = 1.0 + cfg.scale_std * _normal((x.shape[0], 1), generator, x.device)  # (B, 1)
            values, y = values * factor, y * factor
        if cfg.jitter_std > 0:
            values = values + cfg.jitter_std * _normal(tuple(values.shape), generator, x.device)
        return torch.cat([values.unsqueeze(-1).to(x.dtype), x[..., 1:]], dim=-1), y

    return augment


def _normal(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """N(0, 1) drawn on the generator's device (so the draws depend only on it), then moved."""
    return torch.randn(shape, generator=generator, device=generator.device).to(device)
