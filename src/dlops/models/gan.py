"""Conditional DCGAN: a label-conditioned generator and a spectral-norm projection discriminator.

The GAN owns its optimisation (`configure_optimizers`, `training_step`): one discriminator update with
one-sided label smoothing, then one non-saturating generator update plus a mode-seeking term (MSGAN,
Mao et al. 2019: two noise vectors for one label must give different images; without it each class
collapses onto nearly one image on small data), then an update of an exponential moving average (EMA)
of the generator's weights. `sample` and `forward` use the EMA generator, which is much steadier from
epoch to epoch. `forward` only evaluates.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from dlops.models.blocks import (
    ConvDecoder,
    OptimizerSettings,
    check_conv_config,
    evaluating,
    image_shape,
    in_range,
    stage_sizes,
)
from dlops.models.registry import make_config, register_family


@dataclass(frozen=True)
class GANConfig:
    channels: list[int] = field(default_factory=lambda: [32, 64])  # discriminator stages; G mirrors them
    latent_dim: int = 32
    label_smoothing: float = 0.9  # the discriminator's target for real images
    diversity_weight: float = 0.005  # mode-seeking term; 0 turns it off
    ema_decay: float = 0.99  # per generator step; 0 samples from the raw generator

    def __post_init__(self) -> None:
        check_conv_config(self.channels, self.latent_dim, None)
        if not in_range(self.label_smoothing, 0.5, 1.0) or self.label_smoothing == 0.5:
            raise ValueError(f"model.label_smoothing must be in (0.5, 1], got {self.label_smoothing}")
        if not in_range(self.diversity_weight, 0.0, 10.0):
            raise ValueError(f"model.diversity_weight must be in [0, 10], got {self.diversity_weight}")
        if not in_range(self.ema_decay, 0.0, 1.0) or self.ema_decay == 1.0:
            raise ValueError(f"model.ema_decay must be in [0, 1), got {self.ema_decay}")


class Generator(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, config: GANConfig) -> None:
        super().__init__()
        c, h, w = input_shape
        sizes = stage_sizes(h, w, len(config.channels))
        self.bottom = (config.channels[-1], *sizes[-1])  # (C', h', w')
        flat = config.channels[-1] * sizes[-1][0] * sizes[-1][1]
        self.embed = nn.Embedding(num_classes, config.latent_dim)
        self.project = nn.Sequential(
            nn.Linear(2 * config.latent_dim, flat, bias=False), nn.BatchNorm1d(flat), nn.ReLU(inplace=True)
        )
        self.decoder = ConvDecoder(config.channels, sizes, c)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], 1)).view(-1, *self.bottom)  # (B, C', h', w')
        return torch.sigmoid(self.decoder(h))  # (B, C, H, W) in [0, 1]


class Discriminator(nn.Module):
    """Spectral-norm stride-2 convs; logit = linear(phi) + <embed(y), phi> (projection conditioning)."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, config: GANConfig) -> None:
        super().__init__()
        c_in, h, w = input_shape
        layers: list[nn.Module] = []
        for c_out in config.channels:
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        h, w = stage_sizes(h, w, len(config.channels))[-1]
        flat = c_in * h * w
        self.linear = spectral_norm(nn.Linear(flat, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, flat))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        phi = self.body(2.0 * x - 1.0).flatten(1)  # (B, D), images centred to [-1, 1]
        logits = self.linear(phi).squeeze(1)  # (B,)
        if labels is None:  # unconditional part only
            return logits
        return logits + (self.embed(labels) * phi).sum(1)  # (B,)


class GAN(nn.Module):
    is_classifier = False
    early_stopping = False  # adversarial losses do not track quality: train all epochs, keep the last

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = Generator(input_shape, num_classes, config)
        self.discriminator = Discriminator(input_shape, num_classes, config)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)  # what samples come from
        self.grad_clip = 0.0

    def _losses(
        self, x: torch.Tensor, labels: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(discriminator logits on x (B,), d_loss, g_loss) without any update."""
        real = self.discriminator(x, labels)  # (B,)
        fake = self.discriminator(self.generator_ema(z, labels), labels)  # (B,)
        d_loss = self._bce(real, self.config.label_smoothing) + self._bce(fake, 0.0)
        return real, d_loss, self._bce(fake, 1.0)

    @staticmethod
    def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits.float(), target))

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Discriminator logits on x (B,) and, with labels, a deterministic d_loss + g_loss (weights unused).

        Without labels the logits leave out the projection (class) term and the loss is None.

        Runs in eval mode (no BatchNorm or spectral-norm updates); the generator's noise comes from a
        fixed-seed local generator, so the validation loss depends on the weights only.
        """
        with evaluating(self):
            if targets is None:
                return self.discriminator(x, None), None
            noise = torch.Generator().manual_seed(0)
            z = torch.randn(len(x), self.config.latent_dim, generator=noise).to(x.device)
            real, d_loss, g_loss = self._losses(x, targets, z)
        return real, d_loss + g_loss

    def configure_optimizers(self, train_cfg: OptimizerSettings) -> list[torch.optim.Optimizer]:
        """[discriminator Adam, generator Adam], betas (0.5, 0.999), lr from train_cfg, no weight decay."""
        self.grad_clip = train_cfg.grad_clip
        return [
            torch.optim.Adam(part.parameters(), lr=train_cfg.lr, betas=(0.5, 0.999))
            for part in (self.discriminator, self.generator)
        ]

    def training_step(
        self, x: torch.Tensor, y: torch.Tensor, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, torch.Tensor]:
        """One discriminator update, then one generator update; noise from the global torch RNG."""
        opt_d, opt_g = optimizers
        self.train()
        z = torch.randn(len(x), self.config.latent_dim, device=x.device)  # (B, Z)
        fake = self.generator(z, y)  # (B, C, H, W)

        real_logits = self.discriminator(x, y)
        fake_logits = self.discriminator(fake.detach(), y)
        d_loss = self._bce(real_logits, self.config.label_smoothing) + self._bce(fake_logits, 0.0)
        self._step(opt_d, d_loss, self.discriminator)

        self.discriminator.requires_grad_(False)  # the generator step needs no discriminator grads
        g_loss = self._bce(self.discriminator(fake, y), 1.0)
        objective = g_loss
        if self.config.diversity_weight > 0:
            z2 = torch.randn_like(z)
            spread = (self.generator(z2, y) - fake).abs().mean() / (z2 - z).abs().mean()
            objective = g_loss + self.config.diversity_weight / (spread + 1e-5)
        self._step(opt_g, objective, self.generator)
        self.discriminator.requires_grad_(True)
        self._update_ema()
        # tensors, not floats: reading a value back would stall a GPU every step (the loop sums on the device)
        d, g = d_loss.detach().double(), g_loss.detach().double()
        return {"loss": d + g, "g_loss": g, "d_loss": d}

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, part: nn.Module) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(part.parameters(), self.grad_clip)
        optimizer.step()

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config.ema_decay
        for p_ema, p_live in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            p_ema.lerp_(p_live, 1.0 - decay)
        for b_ema, b_live in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            b_ema.copy_(b_live)  # BatchNorm running statistics

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] for class `labels` (N,), with z ~ N(0, I) drawn from `generator`."""
        device = next(self.parameters()).device
        noise_device = generator.device if generator is not None else device
        z = torch.randn(len(labels), self.config.latent_dim, generator=generator, device=noise_device)
        with evaluating(self):
            return self.generator_ema(z.to(device), labels.to(device))  # (N, C, H, W)


@register_family("gan")
def build_gan(*, input_shape: tuple[int, ...], num_classes: int, **config: object) -> GAN:
    cfg = make_config(GANConfig, config)
    return GAN(image_shape(input_shape, "gan"), num_classes, cfg)
