"""Convolutional autoencoder for anomaly detection: stride-2 conv encoder, bottleneck, mirrored decoder.

Trained on normal images only (the trainer filters by `normal_classes`), it reconstructs what it has
seen well and anything else badly, so the per-image reconstruction error is the anomaly score.
The encoder/decoder stages here are shared with the VAE and the GAN generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dlops.models.cnn import image_shape, positive_int, positive_ints
from dlops.models.registry import make_config, register_family

Size = tuple[int, int]


@dataclass(frozen=True)
class AutoencoderConfig:
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one stride-2 stage each
    latent_dim: int = 16
    normal_classes: list[int] | None = None  # stored for the trainer, which trains on these classes only

    def __post_init__(self) -> None:
        check_conv_config(self.channels, self.latent_dim, self.normal_classes)


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


class Autoencoder(nn.Module):
    is_classifier = False

    def __init__(self, input_shape: tuple[int, int, int], config: AutoencoderConfig) -> None:
        super().__init__()
        c, h, w = input_shape
        self.config = config
        sizes = stage_sizes(h, w, len(config.channels))
        self.bottom = (config.channels[-1], *sizes[-1])  # (C', h', w') at the bottleneck
        flat = config.channels[-1] * sizes[-1][0] * sizes[-1][1]
        self.encoder = ConvEncoder(c, config.channels)
        self.to_latent = nn.Linear(flat, config.latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(config.latent_dim, flat), nn.ReLU(inplace=True))
        self.decoder = ConvDecoder(config.channels, sizes, c)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reconstruction and, when `targets` is given (its values are unused), the mean squared error."""
        z = self.to_latent(self.encoder(x).flatten(1))  # (B, Z)
        h = self.from_latent(z).view(-1, *self.bottom)  # (B, C', h', w')
        recon = torch.sigmoid(self.decoder(h))  # (B, C, H, W)
        if targets is None:
            return recon, None
        per_sample = F.mse_loss(recon, x, reduction="none").flatten(1).mean(1)  # (B,)
        return recon, weighted_mean(per_sample, weights)

    @torch.no_grad()
    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image mean squared reconstruction error (B,), in eval mode."""
        with evaluating(self):
            recon, _ = self(x)
        return (recon.float() - x.float()).pow(2).flatten(1).mean(1)  # (B,)


@register_family("autoencoder")
def build_autoencoder(*, input_shape: tuple[int, ...], num_classes: int, **config: object) -> Autoencoder:
    cfg = make_config(AutoencoderConfig, config)
    check_normal_classes(cfg.normal_classes, num_classes)
    return Autoencoder(image_shape(input_shape, "autoencoder"), cfg)
