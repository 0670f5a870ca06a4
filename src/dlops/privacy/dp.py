"""DP-SGD for the training loop, with Opacus: per-example gradients (GradSampleModule), clipping and
Gaussian noise (DPOptimizer) and the privacy spent (RDP accountant), as (ε, δ).

The loop keeps its own shuffled batches of fixed size rather than Poisson sampling; the accountant
counts each step at sampling rate batch / rows, as Opacus does for its non-Poisson loaders. That is
the usual practice and an approximation of the analysed mechanism (docs/privacy.md says so).

A family Opacus cannot train as it is (BatchNorm mixes the examples of a batch; nn.LSTM has no
per-example gradient) is refused by name: the fixes Opacus offers (GroupNorm, DPLSTM) change the
layers, so the checkpoint would no longer rebuild as its family. The MLP with `model.batch_norm:
false` is compatible, on tables, images and bag-of-words text.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dlops.errors import BadInput
from dlops.params import PrivacyConfig

if TYPE_CHECKING:  # torch and Opacus load only where a model trains
    import torch
    from torch import nn

log = logging.getLogger(__name__)
# Opacus' hooks fire on the first layer, whose input needs no gradient; its RDP solver notes when the
# best order is the largest it tries (the bound is then slightly loose, never wrong)
warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed")
warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")


class PrivacyError(BadInput):
    """train.privacy cannot apply to this model or these settings (the message names what and why)."""


def check_compatible(model: nn.Module, family: str) -> None:
    """Raise PrivacyError naming the family and each layer Opacus cannot give per-example gradients."""
    from opacus.validators import ModuleValidator

    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        found = "; ".join(sorted({str(problem) for problem in problems}))
        hint = " (set model.batch_norm: false)" if family == "mlp" else ""
        raise PrivacyError(
            f"train.privacy: family {family!r} has layers DP-SGD cannot train as they are: {found}{hint}"
        )


def refuse_unsupported(
    *, family: str, stepped: bool, sample_weights: bool, augment: bool, compiled: bool, parallel: bool
) -> None:
    """The loop features DP-SGD does not combine with, each refused by its params key."""
    reasons = []
    if stepped:
        reasons.append(f"family {family!r} steps its own optimizers (adversarial training)")
    if sample_weights:
        reasons.append("train.reweigh: weighted losses are not per-example means; set []")
    if augment:
        reasons.append("train.augment: batch augmentations may mix examples (mixup); set false")
    if compiled:
        reasons.append("train.compile: Opacus hooks do not trace; set false")
    if parallel:
        reasons.append("torchrun: several processes would each add noise; train on one")
    if reasons:
        raise PrivacyError("train.privacy: " + "; ".join(reasons))


def _rdp_accountant() -> Any:
    from opacus.accountants import RDPAccountant

    return RDPAccountant()


@dataclass
class PrivateTraining:
    """DP-SGD state for one training run: the accountant's steps and the noise generator."""

    cfg: PrivacyConfig
    noise_multiplier: float
    sample_rate: float
    generator: torch.Generator
    wrapped: Any = None  # the GradSampleModule
    accountant: Any = field(default_factory=_rdp_accountant)  # Opacus' RDPAccountant: the steps taken

    def epsilon(self) -> float:
        return float(self.accountant.get_epsilon(self.cfg.delta)) if self.accountant.history else 0.0

    def step(self) -> None:
        """Count one noisy optimizer step."""
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)

    def steps(self) -> int:
        return sum(steps for _, _, steps in self.accountant.history)

    def record(self) -> dict[str, Any]:
        """What the checkpoint, the metrics and the card say about this run's privacy."""
        return {
            "mechanism": "DP-SGD (Opacus, RDP accountant)",
            "epsilon": round(self.epsilon(), 6),
            "delta": self.cfg.delta,
            "noise_multiplier": round(self.noise_multiplier, 6),
            "max_grad_norm": self.cfg.max_grad_norm,
            "sample_rate": round(self.sample_rate, 8),
            "steps": self.steps(),
        }

    def state(self) -> dict[str, Any]:
        history = [list(entry) for entry in self.accountant.history]
        return {"history": history, "noise_rng": self.generator.get_state()}

    def restore(self, state: dict[str, Any]) -> None:
        self.accountant.history = [(float(s), float(r), int(n)) for s, r, n in state["history"]]
        self.generator.set_state(state["noise_rng"])

    def close(self) -> None:
        """Remove Opacus' hooks and per-example gradients; the model is a plain module again."""
        if self.wrapped is not None:
            self.wrapped._close()
            self.wrapped = None


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: PrivacyConfig,
    *,
    rows: int,
    batch_size: int,
    epochs: int,
    seed: int,
) -> tuple[nn.Module, torch.optim.Optimizer, PrivateTraining]:
    """(the module to call forward on, the DP optimizer, the run's privacy state). The noise comes from
    a generator seeded with `seed`, so a CPU run is reproducible and resumable."""
    import torch
    from opacus import GradSampleModule
    from opacus.accountants.utils import get_noise_multiplier
    from opacus.optimizers import DPOptimizer

    batch_size = min(batch_size, rows)
    sample_rate = batch_size / rows
    if cfg.noise_multiplier is not None:
        sigma = cfg.noise_multiplier
    else:
        assert cfg.target_epsilon is not None
        sigma = float(
            get_noise_multiplier(
                target_epsilon=cfg.target_epsilon,
                target_delta=cfg.delta,
                sample_rate=sample_rate,
                steps=epochs * math.ceil(rows / batch_size),  # the loop's batches, the last one short
                accountant="rdp",
            )
        )
    generator = torch.Generator(device=_device(model)).manual_seed(seed + 7919)
    wrapped = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    dp_optimizer = DPOptimizer(
        optimizer,
        noise_multiplier=sigma,
        max_grad_norm=cfg.max_grad_norm,
        expected_batch_size=batch_size,
        loss_reduction="mean",
        generator=generator,
    )
    state = PrivateTraining(cfg, sigma, sample_rate, generator, wrapped)
    log.info(
        "DP-SGD: noise multiplier %.4f, clip %.3g, sampling rate %.5f, δ=%g%s",
        sigma,
        cfg.max_grad_norm,
        sample_rate,
        cfg.delta,
        "" if cfg.target_epsilon is None else f", target ε={cfg.target_epsilon:g} over {epochs} epochs",
    )
    return wrapped, dp_optimizer, state


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def privacy_metrics(record: dict[str, Any] | None) -> dict[str, float]:
    """Metrics keys of a checkpoint's privacy record (none for a model trained without DP)."""
    if not record:
        return {}
    keys = ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "steps")
    return {f"privacy/{key}": float(record[key]) for key in keys}


def run_tags(record: dict[str, Any] | None) -> dict[str, str]:
    """The training run's tags, which its registered versions carry too: `privacy: dp-sgd` with
    `privacy.epsilon`, `privacy.delta`, ... from the checkpoint's record, or `privacy: none` (no
    differential-privacy guarantee)."""
    if record is None:
        return {"privacy": "none"}
    return {"privacy": "dp-sgd", **{f"privacy.{key}": str(value) for key, value in record.items()}}
