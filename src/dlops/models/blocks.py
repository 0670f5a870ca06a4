"""What more than one family uses: config validators, input-shape checks and the conv building blocks.

Every family file imports only `dlops.models.registry` and this module (plus torch), never another
family, so a stage that trains one family runs that family's file, this one and the registry.
The modules here are built exactly as they were inside the families (same layers, order and
initialisation), so committed weights keep their state_dict keys and values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn

Size = tuple[int, int]


# --- config validators -----------------------------------------------------------------------------


def positive_ints(values: object) -> bool:
    return isinstance(values, list | tuple) and len(values) > 0 and all(positive_int(v) for v in values)


def positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def in_range(value: object, low: float, high: float) -> bool:
    """A real number in [low, high] (bools and strings are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def check_conv_config(channels: list[int], latent_dim: int, normal_classes: list[int] | None) -> None:
    if not positive_ints(channels):
        raise ValueError(f"model.channels must be a list of positive integers, got {channels}")
    if not positive_int(latent_dim):
        raise ValueError(f"model.latent_dim must be a positive integer, got {latent_dim}")
    if normal_classes is not None and not class_ids(normal_classes):
        raise ValueError(f"model.normal_classes must be null or class ids >= 0, got {normal_classes}")


def class_ids(values: object) -> bool:
    ids = values if isinstance(values, list | tuple) else []
    return bool(ids) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ids)


def check_normal_classes(normal_classes: list[int] | None, num_classes: int) -> None:
    if normal_classes is not None and any(c >= num_classes for c in normal_classes):
        raise ValueError(f"model.normal_classes must be < num_classes={num_classes}, got {normal_classes}")


def check_vocab_size(vocab_size: object) -> None:
    if vocab_size is None:
        raise ValueError("model.vocab_size is required (the trainer sets it from the fitted tokenizer)")
    if not positive_int(vocab_size) or vocab_size < 2:  # type: ignore[operator]
        raise ValueError(f"model.vocab_size must be an integer >= 2 (padding + unknown), got {vocab_size!r}")


def check_horizon(horizon: object) -> None:
    if horizon is not None and not positive_int(horizon):
        raise ValueError(f"model.horizon must be a positive integer or null, got {horizon!r}")


# --- input shapes ----------------------------------------------------------------------------------


def image_shape(input_shape: tuple[int, ...], family: str) -> tuple[int, int, int]:
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"model: {family} needs image inputs shaped (C, H, W), got {tuple(input_shape)}")
    c, h, w = (int(s) for s in input_shape)
    return c, h, w


def window_shape(input_shape: tuple[int, ...], family: str) -> tuple[int, int]:
    """(lookback, features) of a forecaster's input windows."""
    if len(input_shape) != 2 or min(input_shape) < 1:
        raise ValueError(
            f"model: {family} forecasts from windows shaped (lookback, F), got {tuple(input_shape)}"
        )
    return int(input_shape[0]), int(input_shape[1])


def text_length(input_shape: tuple[int, ...], family: str) -> int:
    if len(input_shape) != 1 or input_shape[0] < 1:
        raise ValueError(f"model: {family} needs token-id inputs shaped (L,), got {tuple(input_shape)}")
    return int(input_shape[0])


# --- conv encoder/decoder stages (autoencoder, VAE, GAN generator) ---------------------------------


def stage_sizes(h: int, w: int, stages: int) -> list[Size]:
    """Spatial sizes before and after each stride-2 stage: [(H, W), (ceil(H/2), ceil(W/2)), ...]."""
    sizes = [(h, w)]
    for _ in range(stages):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


class ConvEncoder(nn.Sequential):
    """(B, C, H, W) -> (B, channels[-1], *sizes[-1]) with stride-2 Conv–BatchNorm–LeakyReLU stages."""

    def __init__(self, c_in: int, channels: list[int]) -> None:
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            c_in = c_out
        super().__init__(*layers)


class ConvDecoder(nn.Sequential):
    """Mirror of ConvEncoder: (B, channels[-1], *sizes[-1]) -> logits (B, c_out, *sizes[0]).

    Each ConvTranspose stage picks its output_padding to land exactly on the encoder's size, so any
    H and W work (8x8, 28x28, odd sizes) without cropping.
    """

    def __init__(self, channels: list[int], sizes: list[Size], c_out: int) -> None:
        layers: list[nn.Module] = []
        for i in range(len(channels), 0, -1):  # stage i maps sizes[i] -> sizes[i - 1]
            c_in, c_next = channels[i - 1], channels[max(i - 2, 0)]
            (h_out, w_out), (h_in, w_in) = sizes[i - 1], sizes[i]
            pad = (h_out - (2 * h_in - 1), w_out - (2 * w_in - 1))  # 0 or 1
            layers += [
                nn.ConvTranspose2d(c_in, c_next, 3, stride=2, padding=1, output_padding=pad, bias=False),
                nn.BatchNorm2d(c_next),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.Conv2d(channels[0], c_out, 3, padding=1)]
        super().__init__(*layers)


# --- evaluation and loss helpers -------------------------------------------------------------------


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm running stats, no dropout, no spectral-norm updates) for a block, then restore."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return per_sample.mean()
    return (per_sample * weights).sum() / weights.sum()


def pool_steps(h: torch.Tensor, pad: torch.Tensor, pooling: str) -> torch.Tensor:
    """Sequence features (B, D) from per-step states h (B, L, D), over the steps where pad (B, L) is
    False: `max` keeps each feature's strongest step (max-over-time), anything else averages."""
    if pooling == "max":
        return h.masked_fill(pad.unsqueeze(-1), float("-inf")).amax(1)  # (B, D)
    keep = (~pad).unsqueeze(-1).to(h.dtype)  # (B, L, 1)
    return (h * keep).sum(1) / keep.sum(1)  # (B, D)


class OptimizerSettings(Protocol):
    """What a family that owns its optimisation reads of `train:` (params' TrainConfig has these)."""

    lr: float
    grad_clip: float


# --- forecasting (mlp, rnn, transformer on series windows) -------------------------------------------


def forecast_loss(
    pred: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Smooth-L1 (Huber, beta 1) of forecasts (B, H) on scaled targets (B, H), averaged over the targets
    that are not NaN (a masked missing step gives no loss and no gradient); 0 when none is."""
    seen = torch.isfinite(targets)  # (B, H)
    error = nn.functional.smooth_l1_loss(pred.float(), torch.nan_to_num(targets.float()), reduction="none")
    error = torch.where(seen, error, torch.zeros_like(error))  # (B, H)
    counts = seen.sum(1).float()  # (B,)
    if weights is None:
        return error.sum() / counts.sum().clamp(min=1.0)
    return (error.sum(1) * weights).sum() / (counts * weights).sum().clamp(min=1e-12)


def last_value(x: torch.Tensor) -> torch.Tensor:
    """The last scaled value of each window (B, 1): forecasters learn the change from it."""
    return x[:, -1, :1]
