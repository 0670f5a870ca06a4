"""Schema of a model entry's `search:` section (Optuna over `train.<field>` and `model.<key>`) and the
checks that the searched keys exist and the space holds params.yaml's own values."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dlops.params.fields import Strict


class SearchParam(Strict):
    """One searched key: a range (`low`..`high`, `log` scale, `step`) or a list of `choices`."""

    low: int | float | None = None  # integers (32, not 32.0) search whole numbers
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParam:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high (a range) or choices")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        return self

    @property
    def is_int(self) -> bool:
        """A range of whole numbers (written as integers in params.yaml): searched with suggest_int."""
        bounds = (self.low, self.high, 1 if self.step is None else self.step)
        return self.choices is None and all(isinstance(v, int) for v in bounds)


class SearchPruner(Strict):
    """Optuna's MedianPruner: a trial stops when its validation score at an epoch is worse than the
    median of earlier trials at that epoch, after `startup_trials` whole trials and `warmup_epochs`."""

    startup_trials: int = Field(3, ge=0)
    warmup_epochs: int = Field(2, ge=0)


class SearchConfig(Strict):
    """Stage `search`: Optuna TPE over `space` (keys `train.<field>` or `model.<key>`), scored on the
    validation split; `train` then uses the best values. Null: no search, params.yaml's values."""

    trials: int = Field(20, ge=1, le=100_000)  # the study's total, over all workers
    timeout_s: float | None = Field(None, gt=0.0)  # stop starting trials after this long (per worker)
    epochs: int | None = Field(None, ge=1)  # per trial; null = train.epochs
    objective: Literal["val/loss", "val/accuracy"] = "val/loss"  # at the trial's best epoch
    seed: int = 0  # TPE's seed: one worker with the same inputs proposes the same trials
    workers: int = Field(1, ge=1, le=64)  # processes on this machine sharing the study
    pruner: SearchPruner = SearchPruner()
    # Optuna storage URL; null = sqlite under .dlops/ (DLOPS_OPTUNA_STORAGE overrides both, e.g. a shared
    # PostgreSQL whose password stays out of params.yaml)
    storage: str | None = Field(None, pattern=r"^(sqlite|postgresql|postgresql\+\w+|mysql\+?\w*)://")
    space: dict[str, SearchParam] = Field(min_length=1)

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "minimize" if self.objective == "val/loss" else "maximize"


SEARCHABLE_TRAIN_KEYS = (
    "lr", "weight_decay", "batch_size", "epochs", "warmup_epochs", "patience", "grad_clip", "scheduler",
    "head_lr",
)  # fmt: skip
