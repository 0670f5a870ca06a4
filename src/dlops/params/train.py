"""Schema of a model entry's `train:` section: the family-agnostic training loop's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dlops.params.fields import InitFrom, Strict


class PrivacyConfig(Strict):
    """DP-SGD (privacy/dp.py, Opacus): each example's gradient is clipped to `max_grad_norm`, Gaussian
    noise is added to every batch's sum, and an RDP accountant counts the privacy spent, as (ε, δ).

    Give `target_epsilon` (the noise is chosen so that all `epochs` spend at most that) or
    `noise_multiplier` (the noise as it is; ε is whatever the steps spend), not both."""

    target_epsilon: float | None = Field(None, gt=0.0, le=1000.0)
    noise_multiplier: float | None = Field(None, gt=0.0, le=100.0)
    delta: float = Field(1e-5, gt=0.0, lt=1.0)  # keep it below 1 / (training rows)
    max_grad_norm: float = Field(1.0, gt=0.0, le=1000.0)  # the per-example clipping bound C

    @model_validator(mode="after")
    def _one_noise_source(self) -> PrivacyConfig:
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError("set exactly one of target_epsilon and noise_multiplier")
        return self


class TrainConfig(Strict):
    epochs: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(256, ge=1, le=1_000_000)
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-2, ge=0.0, le=10.0)
    scheduler: Literal["cosine", "onecycle", "none"] = "cosine"
    warmup_epochs: int = Field(0, ge=0)
    patience: int = Field(5, ge=1)
    early_stopping: bool = True  # false: train every epoch and keep the last (no patience, no best epoch)
    # train on a seeded sample of this many training rows (null: all); evaluation and the membership
    # audit use the same rows as the training split. For controls and small-data studies.
    max_rows: int | None = Field(None, ge=1)
    # what early stopping and the kept epoch follow: the validation loss, or (classifiers) the validation
    # accuracy, closer to the primary metric on real corpora where the loss turns up while accuracy rises
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    min_delta: float = Field(1e-4, ge=0.0)
    grad_clip: float = Field(1.0, ge=0.0)
    # token-id inputs (text): each batch holds texts of similar length (pools of 50 shuffled batches,
    # sorted by length, batches shuffled), so padding columns the model trims are not computed; false =
    # plain shuffled batches
    length_bucketing: bool = True
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # bf16 autocast on CUDA (ignored on the CPU)
    # CUDA only: TF32 matmuls/convolutions and cuDNN autotuning. Faster, not bit-reproducible run to run;
    # false keeps a GPU run deterministic. The CPU path is always deterministic.
    fast_math: bool = True
    # torch.compile the model's forward (the batch dimension is dynamic: a short last batch reuses the graph)
    compile: bool = False
    augment: bool = True  # apply the task's `augment` section to this model's training batches
    # bias mitigation in training: reweigh the loss so the label is independent of the intersection of
    # these sensitive attributes (Kamiran-Calders); [] = off
    reweigh: list[str] = Field(default_factory=list)
    # warm start (training/transfer.py): `champion` fine-tunes from the model's own @champion (none yet:
    # scratch, with a warning); `models:/<name>@<alias>` or `models:/<name>/<version>` from that registered
    # version; a project-relative path from that checkpoint file. Lineage records the parent.
    init_from: InitFrom | None = None
    freeze: list[str] = Field(default_factory=list)  # parameter-name prefixes kept as loaded; needs init_from
    head_lr: float | None = Field(None, gt=0.0, le=10.0)  # the `head` module's learning rate; null = lr
    # differential privacy: DP-SGD with a privacy budget (PrivacyConfig); null = ordinary training
    privacy: PrivacyConfig | None = None
