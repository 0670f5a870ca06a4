"""Schemas of a model entry's `gates:` and `evaluate:` sections: what a candidate must pass before it
may become @champion, and what `evaluate` computes (fair thresholds, the generators' judge)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dlops.params.fields import Strict
from dlops.params.train import TrainConfig

PrimaryMetric = Literal[
    "accuracy", "balanced_accuracy", "f1", "roc_auc",  # classifiers
    "anomaly_roc_auc", "anomaly_average_precision",  # autoencoder, vae
    "sample_accuracy",  # generators: the judge CNN recognises the class a sample was drawn for
    "forecast_skill",  # forecasters: 1 - MASE (0 = as good as the seasonal-naive forecast)
]  # fmt: skip


class GatesConfig(Strict):
    """Gates a candidate must pass before it may become @champion. Gaps are absolute differences.

    `min_primary` always applies; every other gate applies when its limit is set (null: not checked,
    and the version's tags say so). A set gate whose metric is missing fails.
    """

    primary_metric: PrimaryMetric = "balanced_accuracy"
    min_primary: float = Field(0.7, ge=-100.0)  # below 0 only for forecast_skill (1 - MASE)
    # classifiers: group fairness (tasks with sensitive columns) and the worst class
    max_demographic_parity_difference: float | None = Field(None, ge=0.0, le=1.0)
    max_equalized_odds_difference: float | None = Field(None, ge=0.0, le=1.0)
    max_class_recall_gap: float | None = Field(None, ge=0.0, le=1.0)  # mean recall - worst class recall
    max_overfit_gap: float | None = Field(None, ge=0.0, le=1.0)  # |train - test| primary metric
    # DP-SGD (train.privacy): the spent ε at the run's δ; a model trained without DP has no ε and fails it
    max_epsilon: float | None = Field(None, gt=0.0)
    # autoencoder, vae: relative gap between validation and training reconstruction error
    max_reconstruction_gap: float | None = Field(None, ge=0.0)
    # generators: share of classes the judge recognises in samples; memorisation (1 = as far from the
    # training images as from held-out ones, well below 1 = copying training images)
    min_class_coverage: float | None = Field(None, ge=0.0, le=1.0)
    min_memorization_ratio: float | None = Field(None, ge=0.0)
    # forecasters: MASE on test (below 1.0 = better than the seasonal-naive forecast), the distance of the
    # prediction intervals' test coverage from their nominal level, and the worst series group's relative
    # error (|error| / the series' training level) minus the mean over groups (`columns.sensitive`)
    max_mase: float | None = Field(None, gt=0.0)
    max_coverage_error: float | None = Field(None, ge=0.0, le=1.0)
    max_group_error_gap: float | None = Field(None, ge=0.0)
    # classifiers: ROC AUC of the loss-threshold membership-inference attack, training rows against as
    # many test rows (0.5 = the attacker cannot tell them apart; dlops.privacy.membership)
    max_membership_auc: float | None = Field(None, ge=0.5, le=1.0)
    # `point`: a fairness gap fails when its estimate exceeds the limit; `confident`: only when the lower
    # bound of its bootstrap interval does ("exceeds the limit with 95% confidence")
    fairness_rule: Literal["point", "confident"] = "point"
    # The champion/challenger decision on the same test rows: `paired_bootstrap` (of the primary metric's
    # difference) or `mcnemar` (accuracy); `tolerance`: promote unless worse by `promotion_tolerance`.
    # Families without per-row predictions on the test split (generators) always use `tolerance`.
    promotion_test: Literal["paired_bootstrap", "mcnemar", "tolerance"] = "paired_bootstrap"
    promotion_confidence: float = Field(0.95, gt=0.5, lt=1.0)
    when_indistinguishable: Literal["keep", "promote"] = "keep"
    first_version: Literal["promote", "hold"] = "promote"  # no champion yet; hold = wait for `dlops promote`
    promotion_tolerance: float = Field(0.005, ge=0.0, le=1.0)
    # a control model: built to fail the gate named here (e.g. `max_membership_auc` for a model that
    # memorises its training rows), run to show that the gate catches it. It is registered, never
    # promoted; `register` succeeds when that gate rejects it and fails when it does not.
    control: str | None = None

    @model_validator(mode="after")
    def _control_names_a_set_gate(self) -> GatesConfig:
        """A control names one of the limits above (a `min_` or `max_` field), and that limit is set."""
        if self.control is None:
            return self
        limits = sorted(name for name in type(self).model_fields if name.startswith(("min_", "max_")))
        if self.control not in limits:
            raise ValueError(f"control: {self.control!r} is not a gate; one of {limits}")
        if getattr(self, self.control) is None:
            raise ValueError(f"control: gates.{self.control} is null; a control must fail a set gate")
        return self


class PostprocessConfig(Strict):
    """Fair thresholds after training (binary classifiers): fairlearn's ThresholdOptimizer on the
    network's positive-class score, fitted on the validation split, served with the model."""

    method: Literal["threshold_optimizer"] = "threshold_optimizer"
    constraint: Literal["demographic_parity", "equalized_odds"] = "demographic_parity"
    objective: Literal["accuracy_score", "balanced_accuracy_score"] = "accuracy_score"
    tol: float | None = Field(None, ge=0.0, le=1.0)  # relaxed constraint (demographic parity only)
    attributes: list[str] = Field(min_length=1)  # thresholds per intersection of these attributes


class JudgeConfig(Strict):
    """The project's own CNN, trained on the task's training split, used to judge generated images:
    its penultimate features give the Frechet distance, its predictions the sample accuracy."""

    model: dict[str, Any] = Field(default_factory=dict)
    train: TrainConfig = TrainConfig(epochs=15, batch_size=128, patience=4)


class EvaluateConfig(Strict):
    """What `evaluate` computes beyond the defaults of the family's kind."""

    attribution_images: int = Field(8, ge=0, le=64)  # image classifiers: integrated-gradients grid
    judge: JudgeConfig | None = None  # generators (gan, vae): required
    samples_per_class: int = Field(100, ge=1, le=10_000)  # generators: conditional samples judged
    # gan: also train the judge with this fraction of each batch replaced by generated samples and
    # report its test accuracy with and without them (0 = skip)
    synthetic_fraction: float = Field(0.0, ge=0.0, le=0.9)
    postprocess: PostprocessConfig | None = None  # binary classifiers on tasks with sensitive columns
    bootstrap: int = Field(1000, ge=0, le=100_000)  # resamples of the test split for intervals; 0 = off
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
