"""Conditional VAE (CVAE): anomaly detector (negative ELBO) and class-conditional image generator.

The encoder's conv features and the one-hot label give q(z | x, y); the decoder maps z and the one-hot
label to Bernoulli pixel logits. Loss = BCE summed over pixels + beta * KL, averaged over the batch.
The label joins after the conv stack, so scoring every candidate class re-runs only the small heads.
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
    in_range,
    stage_sizes,
    weighted_mean,
)
from dlops.models.registry import make_config, register_family


@dataclass(frozen=True)
class VAEConfig:
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one stride-2 stage each
    latent_dim: int = 16
    beta: float = 1.0  # KL weight
    normal_classes: list[int] | None = None  # candidate classes for anomaly_score (and the trainer's filter)

    def __post_init__(self) -> None:
        check_conv_config(self.channels, self.latent_dim, self.normal_classes)
        if not in_range(self.beta, 0.0, 100.0):
            raise ValueError(f"model.beta must be in [0, 100], got {self.beta}")


class VAE(nn.Module):
    is_classifier = False

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, config: VAEConfig) -> None:
        super().__init__()
        c, h, w = input_shape
        self.config, self.num_classes = config, num_classes
        sizes = stage_sizes(h, w, len(config.channels))
        self.bottom = (config.channels[-1], *sizes[-1])  # (C', h', w') at the bottleneck
        flat = config.channels[-1] * sizes[-1][0] * sizes[-1][1]
        self.encoder = ConvEncoder(c, config.channels)
        self.posterior = nn.Linear(flat + num_classes, 2 * config.latent_dim)  # -> (mu, logvar)
        self.from_latent = nn.Sequential(
            nn.Linear(config.latent_dim + num_classes, flat), nn.ReLU(inplace=True)
        )
        self.decoder = ConvDecoder(config.channels, sizes, c)
        candidates = config.normal_classes if config.normal_classes is not None else range(num_classes)
        self.candidates = sorted(set(candidates))

    def _posterior(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        onehot = F.one_hot(labels, self.num_classes).to(feats.dtype)  # (B, K)
        mu, logvar = self.posterior(torch.cat([feats, onehot], 1)).chunk(2, dim=1)  # (B, Z) each
        return mu, logvar.clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Pixel logits (B, C, H, W) for latents z (B, Z) and labels (B,)."""
        onehot = F.one_hot(labels, self.num_classes).to(z.dtype)  # (B, K)
        h = self.from_latent(torch.cat([z, onehot], 1)).view(-1, *self.bottom)  # (B, C', h', w')
        return self.decoder(h)

    def _neg_elbo(
        self, x: torch.Tensor, feats: torch.Tensor, labels: torch.Tensor, sample: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(pixel logits (B, C, H, W), per-sample BCE + beta * KL (B,))."""
        mu, logvar = self._posterior(feats, labels)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu  # (B, Z)
        logits = self.decode(z, labels)  # (B, C, H, W)
        recon = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)  # (B,)
        return logits, recon.flatten(1).sum(1) + self.config.beta * kl.float()

    def _class_scores(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """Deterministic negative ELBO (posterior mean) for each candidate class: (B, K')."""
        scores = []
        for label in self.candidates:
            labels = torch.full((len(x),), label, dtype=torch.long, device=x.device)
            scores.append(self._neg_elbo(x, feats, labels, sample=False)[1])
        return torch.stack(scores, 1)  # (B, K')

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """With labels: (reconstruction, mean negative ELBO); z is sampled in training, the mean in eval.

        Without labels: (reconstruction under the best-fitting candidate class, None), i.e. the class
        `anomaly_score` picks, decoded from the posterior mean, so it is deterministic.
        """
        feats = self.encoder(x).flatten(1)  # (B, D)
        if targets is None:
            best = self._class_scores(x, feats).argmin(1)  # (B,) index into candidates
            labels = torch.tensor(self.candidates, device=x.device)[best]
            logits, _ = self._neg_elbo(x, feats, labels, sample=False)
            return torch.sigmoid(logits), None
        logits, per_sample = self._neg_elbo(x, feats, targets, sample=self.training)
        return torch.sigmoid(logits), weighted_mean(per_sample, weights)

    @torch.no_grad()
    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Lowest negative ELBO over the candidate classes (`normal_classes`, else all): (B,)."""
        with evaluating(self):
            return self._class_scores(x, self.encoder(x).flatten(1)).min(1).values

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] for class `labels` (N,), with z ~ N(0, I) drawn from `generator`."""
        device = next(self.parameters()).device
        noise_device = generator.device if generator is not None else device
        z = torch.randn(len(labels), self.config.latent_dim, generator=generator, device=noise_device)
        with evaluating(self):
            return torch.sigmoid(self.decode(z.to(device), labels.to(device)))  # (N, C, H, W)


@register_family("vae")
def build_vae(*, input_shape: tuple[int, ...], num_classes: int, **config: object) -> VAE:
    cfg = make_config(VAEConfig, config)
    check_normal_classes(cfg.normal_classes, num_classes)
    return VAE(image_shape(input_shape, "vae"), num_classes, cfg)
