"""Convolutional autoencoder for anomaly detection: stride-2 conv encoder, bottleneck, mirrored decoder.

Trained on normal images only (the trainer filters by `normal_classes`), it reconstructs what it has
seen well and anything else badly, so the per-image reconstruction error is the anomaly score.
The encoder/decoder stages (dlops.models.blocks) are shared with the VAE and the GAN generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dlops.models.blocks import (
    ConvDecoder,
    ConvEncoder,
    check_conv_config,
    check_normal_classes,
    evaluating,
    image_shape,
    stage_sizes,
    weighted_mean,
)
from dlops.models.registry import make_config, register_family


@dataclass(frozen=True)
class AutoencoderConfig:
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one stride-2 stage each
    latent_dim: int = 16
    normal_classes: list[int] | None = None  # stored for the trainer, which trains on these classes only

    def __post_init__(self) -> None:
        check_conv_config(self.channels, self.latent_dim, self.normal_classes)


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
