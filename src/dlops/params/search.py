"""Schema of a model entry's `search:` section (Optuna over `train.<field>` and `model.<key>`) and the
checks that the searched keys exist and the space holds params.yaml's own values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from dlops.params.fields import Strict
from dlops.params.train import TrainConfig

if TYPE_CHECKING:
    from dlops.params.models import ModelEntry


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


def check_search(where: str, entry: ModelEntry, kinds: frozenset[str]) -> None:
    """Searched keys name a train field or a key of the model's own `model:` mapping; the objective is
    measured for the family; a GAN has no validation score to search on."""
    search = entry.search
    assert search is not None
    if "generator" in kinds and "anomaly" not in kinds:
        raise ValueError(f"{where}.search: a {entry.family} has no validation score to search on; set null")
    if search.objective == "val/accuracy" and "classifier" not in kinds:
        raise ValueError(f"{where}.search.objective: val/accuracy is measured for classifiers; use val/loss")
    init_from = entry.train.init_from
    if init_from is not None and (init_from == "champion" or "@" in init_from):
        raise ValueError(
            f"{where}.search: train.init_from {init_from!r} moves (a new champion, an alias moved), so the "
            "study's trials and the retrained model could start from different parents; pin the parent "
            "with models:/<name>/<version> or a checkpoint file"
        )
    for key, spec in search.space.items():
        section, _, name = key.partition(".")
        if section == "train" and name in SEARCHABLE_TRAIN_KEYS:
            current = getattr(entry.train, name)
            whole = TrainConfig.model_fields[name].annotation is int
        elif section == "model" and name in entry.model:
            current, whole = entry.model[name], False
        else:
            raise ValueError(
                f"{where}.search.space.{key}: not searchable; use train.<{'|'.join(SEARCHABLE_TRAIN_KEYS)}> "
                f"or model.<a key of {where}.model: {sorted(entry.model)}>"
            )
        _check_space_holds(f"{where}.search.space.{key}", spec, current, whole)


def _check_space_holds(where: str, spec: SearchParam, current: Any, whole: bool) -> None:
    """The space holds the value params.yaml gives (the study's first trial, what the best is compared
    with); an integer setting is searched over integers."""
    if spec.choices is not None:
        if current not in spec.choices:
            raise ValueError(
                f"{where}: the current value {current!r} must be one of the choices {spec.choices}"
            )
        return
    if whole and not spec.is_int:
        raise ValueError(f"{where}: an integer setting; write low and high (and step) as integers")
    assert spec.low is not None and spec.high is not None
    if (
        isinstance(current, bool)
        or not isinstance(current, int | float)
        or not spec.low <= current <= spec.high
    ):
        raise ValueError(f"{where}: the current value {current!r} must lie in [{spec.low}, {spec.high}]")
