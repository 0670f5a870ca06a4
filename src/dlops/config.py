"""Typed model of params.yaml and every project path: the only reader of params.yaml.

A typo, a wrong type or an out-of-range value stops the run with a `ConfigError` that names the key
path (and, for typos, the closest valid key), so nothing downstream ever sees a silent default.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

PROJECT_ROOT = Path(os.environ.get("DLOPS_ROOT", Path.cwd())).resolve()


class ConfigError(ValueError):
    """params.yaml is invalid; the message names each offending key path."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------------ path and URL rules
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _plain_name(name: str) -> str | None:
    """Why `name` (a task or model name: it becomes a path component and part of a registered model
    name) is not a plain name, or None when it is."""
    if not _PLAIN_NAME.fullmatch(name) or ".." in name:
        return (
            f"{name!r} is not a plain name: use letters, digits, '-', '_' and '.', not starting with '.' "
            "(it becomes a path component such as data/raw/<task>.parquet or models/<model>/)"
        )
    return None


def _local_path(value: str) -> str:
    """An input path of a source that reads local files only: a URL here is refused, not taken for a
    relative path."""
    if "://" in value:
        raise ValueError(
            f"{value!r} is a URL, but this key takes a local path; download the file and give its path "
            "(only `source: table` reads a `url`, pinned by `sha256`)"
        )
    return value


def _inside_project(value: str) -> str:
    """An output path under the project root: relative, no URL, no `..` that leaves the project."""
    _local_path(value)
    normal = os.path.normpath(value.replace("\\", "/"))
    if os.path.isabs(value) or normal == ".." or normal.startswith("../"):
        raise ValueError(f"{value!r} must be a relative path inside the project (it is written there)")
    return value


def _http_url(value: str) -> str:
    """An http(s) URL with a host; file://, ftp://, s3:// and the like are refused."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return value


def _sha256_hex(value: str) -> str:
    """A sha256 as 64 hex digits, lowercased (PowerShell's Get-FileHash prints upper case)."""
    lowered = value.strip().lower()
    if not _SHA256.fullmatch(lowered):
        raise ValueError(f"must be 64 hex characters (a sha256 digest), got {value!r}")
    return lowered


_REGISTERED = re.compile(r"^models:/[A-Za-z0-9_.-]+(@[A-Za-z0-9_-]+|/[0-9]+)$")


def _init_from(value: str) -> str:
    """`champion`, a registered model URI, or a checkpoint file inside the project."""
    if value == "champion" or _REGISTERED.fullmatch(value):
        return value
    if value.startswith("models:"):
        raise ValueError(
            f"{value!r} is not a registered model URI; use models:/<name>@<alias> or models:/<name>/<version>"
        )
    normal = os.path.normpath(value.replace("\\", "/"))
    escapes = normal == ".." or normal.startswith("../")
    if not value.strip() or "://" in value or os.path.isabs(value) or escapes:
        raise ValueError(
            f"{value!r}: use champion, models:/<name>@<alias>, models:/<name>/<version> or a checkpoint "
            "path relative to the project root, inside it (no URL, absolute path or '..')"
        )
    return value


LocalPath = Annotated[str, AfterValidator(_local_path)]
InitFrom = Annotated[str, AfterValidator(_init_from)]
ProjectPath = Annotated[str, AfterValidator(_inside_project)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Sha256 = Annotated[str, AfterValidator(_sha256_hex)]


# ---------------------------------------------------------------------------------------------- ingest
class IncomeShift(Strict):
    """Distribution shift of the synthetic income table ("next week's data"); all zero = no shift.

    The feature offsets are covariate shift (the label follows the same rule from the shifted
    features); `positive_rate` is prior shift (added to the label's logit).
    """

    age: float = Field(0.0, ge=-30.0, le=30.0)  # years added to every age
    education_years: float = Field(0.0, ge=-10.0, le=10.0)
    hours_per_week: float = Field(0.0, ge=-40.0, le=40.0)
    positive_rate: float = Field(0.0, ge=-5.0, le=5.0)  # added to the label's logit


class SyntheticIncomeSource(Strict):
    """Built-in, seeded census-like table with a tunable bias (see dlops.data.synthetic)."""

    source: Literal["synthetic-income"]
    rows: int = Field(20_000, ge=100, le=5_000_000)
    seed: int = 7
    bias: float = Field(0.0, ge=0.0, le=5.0)
    missing_rate: float = Field(0.02, ge=0.0, le=0.5)
    outlier_rate: float = Field(0.002, ge=0.0, le=0.1)
    shift: IncomeShift = Field(default_factory=IncomeShift)


class TableSource(Strict):
    """A real CSV/Parquet table: a local path or an http(s) URL pinned by sha256."""

    source: Literal["table"]
    path: LocalPath | None = None
    url: HttpUrl | None = None
    sha256: Sha256 | None = None
    format: Literal["auto", "csv", "parquet"] = "auto"
    csv_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_location(self) -> TableSource:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of 'path' or 'url'")
        if self.url is not None and self.sha256 is None:
            raise ValueError("a `url` needs a pinned `sha256` (64 hex characters, e.g. from sha256sum)")
        return self


IngestConfig = Annotated[SyntheticIncomeSource | TableSource, Field(discriminator="source")]


class _ImageSourceBase(Strict):
    # Every image is resized to size x size (torch, antialiased); None keeps the native size, which
    # must then be the same for every image.
    size: int | None = Field(None, ge=4, le=1024)
    channels: Literal[1, 3] = 1
    # Optional CSV with one row per image and group columns (e.g. a site or a demographic); joined on
    # `index` (row number, IDX/NPZ) or `file` (path below the folder, image-folder).
    metadata: LocalPath | None = None
    class_names: list[str] | None = None  # names for labels 0..K-1 (IDX/NPZ); folders name their own


class DigitsSource(_ImageSourceBase):
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), read from the installed package."""

    source: Literal["sklearn-digits"]
    size: int | None = Field(16, ge=4, le=1024)


class IdxSource(_ImageSourceBase):
    """MNIST-format IDX files (gzipped or not): an idx3 images file and an idx1 labels file."""

    source: Literal["idx"]
    images: LocalPath
    labels: LocalPath


class NpzSource(_ImageSourceBase):
    """A NumPy .npz with images (N, H, W) or (N, H, W, C) uint8 and integer labels (N,)."""

    source: Literal["npz"]
    path: LocalPath
    x_key: str = "x"
    y_key: str = "y"


class ImageFolderSource(_ImageSourceBase):
    """One subfolder per class holding PNG/JPEG files (read with Pillow)."""

    source: Literal["image-folder"]
    path: LocalPath
    extensions: list[str] = Field(default_factory=lambda: [".png", ".jpg", ".jpeg"])


ImageIngestConfig = Annotated[
    DigitsSource | IdxSource | NpzSource | ImageFolderSource, Field(discriminator="source")
]


class ColumnRoles(Strict):
    """What each column of the raw table is for."""

    target: str
    positive_label: str | int | bool | None = None
    sensitive: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    ignored: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> ColumnRoles:
        seen: dict[str, str] = {}
        roles = {
            "target": [self.target],
            "categorical": self.categorical,
            "numeric": self.numeric,
            "ignored": self.ignored,
        }
        for role, names in roles.items():
            for name in names:
                if name in seen:
                    raise ValueError(f"column {name!r} is both {seen[name]} and {role}")
                seen[name] = role
        if not self.categorical and not self.numeric:
            raise ValueError("declare at least one 'categorical' or 'numeric' feature column")
        return self

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


# -------------------------------------------------------------------------------------------- validate
class ValidateConfig(Strict):
    suite: ProjectPath = "expectations/tabular.json"
    # A new table with no suite yet: `ingest` drafts one from it (infer, then validate) instead of failing.
    draft_if_missing: bool = False
    min_rows: int = Field(500, ge=1)
    max_null_fraction: float = Field(0.1, ge=0.0, le=1.0)
    min_class_fraction: float = Field(0.05, ge=0.0, le=0.5)
    max_duplicate_fraction: float = Field(0.01, ge=0.0, le=1.0)


# ------------------------------------------------------------------------------------------ preprocess
class SplitConfig(Strict):
    train: float = Field(0.7, gt=0.0, lt=1.0)
    val: float = Field(0.15, gt=0.0, lt=1.0)
    test: float = Field(0.15, gt=0.0, lt=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:.4f}")
        return self


class TabularAugmentConfig(Strict):
    noise_std: float = Field(0.0, ge=0.0, le=1.0)
    mixup_alpha: float = Field(0.0, ge=0.0, le=10.0)


class PreprocessConfig(Strict):
    split: SplitConfig = SplitConfig()
    scaling: Literal["standard", "minmax", "none"] = "standard"
    max_categories: int = Field(50, ge=2, le=10_000)


class TabularTask(Strict):
    """A table: dvc.yaml reads every section below, so each must be written out in params.yaml."""

    kind: Literal["tabular"]
    ingest: IngestConfig
    columns: ColumnRoles
    validate_: ValidateConfig = Field(alias="validate")
    preprocess: PreprocessConfig
    augment: TabularAugmentConfig

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ImageColumns(Strict):
    """Columns of the per-image raw table: `label`, plus the metadata CSV's group columns named here."""

    target: Literal["label"] = "label"
    positive_label: None = None
    sensitive: list[str] = Field(default_factory=list)


class ImageValidateConfig(Strict):
    suite: ProjectPath
    draft_if_missing: bool = False
    min_rows: int = Field(100, ge=1)
    min_class_fraction: float = Field(0.02, ge=0.0, le=1.0)
    max_class_fraction: float = Field(0.5, ge=0.0, le=1.0)
    max_duplicate_fraction: float = Field(0.01, ge=0.0, le=1.0)


class ImagePreprocessConfig(Strict):
    split: SplitConfig = SplitConfig()


class ImageAugmentConfig(Strict):
    """kornia, on the training device, training batches only. 0 switches a transform off."""

    degrees: float = Field(0.0, ge=0.0, le=180.0)  # random rotation in [-degrees, degrees]
    translate: float = Field(0.0, ge=0.0, le=0.5)  # shift up to this fraction of width/height
    scale: float = Field(0.0, ge=0.0, le=0.5)  # zoom in [1 - scale, 1 + scale]
    erasing_p: float = Field(0.0, ge=0.0, le=1.0)  # probability of random erasing per image
    noise_std: float = Field(0.0, ge=0.0, le=1.0)  # Gaussian pixel noise (pixels are in [0, 1])

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in self.model_dump().values())


class ImageTask(Strict):
    kind: Literal["images"]
    ingest: ImageIngestConfig
    columns: ImageColumns
    validate_: ImageValidateConfig = Field(alias="validate")
    preprocess: ImagePreprocessConfig
    augment: ImageAugmentConfig

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ------------------------------------------------------------------------------------------------ text
class ReviewsShift(Strict):
    """Distribution shift of the synthetic reviews ("next week's data"); the defaults are no shift."""

    length: float = Field(1.0, ge=0.0, le=5.0)  # multiplies the amount of neutral filler
    # Share of reviews that get one extra sentence of invented, out-of-vocabulary words (label unchanged).
    novel_words: float = Field(0.0, ge=0.0, le=1.0)


class SyntheticReviewsSource(Strict):
    """Built-in, seeded review-like sentences with negation, contrast and order-dependent labels."""

    source: Literal["synthetic-reviews"]
    rows: int = Field(12_000, ge=100, le=2_000_000)
    seed: int = 11
    label_noise: float = Field(0.02, ge=0.0, le=0.5)  # share of labels flipped at random
    shift: ReviewsShift = Field(default_factory=ReviewsShift)


class TextTableSource(Strict):
    """CSV, TSV or JSONL with a text column, a label column and optional group columns."""

    source: Literal["text-table"]
    path: LocalPath
    format: Literal["auto", "csv", "tsv", "jsonl"] = "auto"
    text_column: str = "text"
    label_column: str = "label"


class TextFolderSource(Strict):
    """One subfolder per class (e.g. pos/ and neg/, the IMDB layout) of UTF-8 .txt files."""

    source: Literal["text-folder"]
    path: LocalPath


TextIngestConfig = Annotated[
    SyntheticReviewsSource | TextTableSource | TextFolderSource, Field(discriminator="source")
]


class TextColumns(Strict):
    """Columns of the raw text table: `text`, `label`, and the group columns named here."""

    target: Literal["label"] = "label"
    positive_label: str | None = None
    sensitive: list[str] = Field(default_factory=list)


class TextValidateConfig(Strict):
    suite: ProjectPath
    draft_if_missing: bool = False
    min_rows: int = Field(100, ge=1)
    min_chars: int = Field(1, ge=1)
    max_chars: int = Field(100_000, ge=1)
    min_class_fraction: float = Field(0.05, ge=0.0, le=0.5)
    max_duplicate_fraction: float = Field(0.01, ge=0.0, le=1.0)


class TokenizerConfig(Strict):
    """Word-level vocabulary fitted on the training split only; ids 0 = padding, 1 = unknown."""

    min_freq: int = Field(2, ge=1)
    max_vocab: int = Field(20_000, ge=10)
    max_length: int = Field(64, ge=4, le=4096)  # longer texts are truncated
    lowercase: bool = True


class TextPreprocessConfig(Strict):
    split: SplitConfig = SplitConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()


class TextAugmentConfig(Strict):
    token_dropout: float = Field(0.0, ge=0.0, le=0.5)  # share of tokens replaced by <unk>
    local_swap: float = Field(0.0, ge=0.0, le=0.5)  # share of adjacent token pairs swapped


class TextTask(Strict):
    kind: Literal["text"]
    ingest: TextIngestConfig
    columns: TextColumns
    validate_: TextValidateConfig = Field(alias="validate")
    preprocess: TextPreprocessConfig
    augment: TextAugmentConfig

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


TaskConfig = Annotated[TabularTask | ImageTask | TextTask, Field(discriminator="kind")]


# ---------------------------------------------------------------------------------------------- train
class TrainConfig(Strict):
    epochs: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(256, ge=1, le=1_000_000)
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-2, ge=0.0, le=10.0)
    scheduler: Literal["cosine", "onecycle", "none"] = "cosine"
    warmup_epochs: int = Field(0, ge=0)
    patience: int = Field(5, ge=1)
    min_delta: float = Field(1e-4, ge=0.0)
    grad_clip: float = Field(1.0, ge=0.0)
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


PrimaryMetric = Literal[
    "accuracy", "balanced_accuracy", "f1", "roc_auc",  # classifiers
    "anomaly_roc_auc", "anomaly_average_precision",  # autoencoder, vae
    "sample_accuracy",  # generators: the judge CNN recognises the class a sample was drawn for
]  # fmt: skip
PRIMARY_BY_KIND: dict[str, set[str]] = {
    "classifier": {"accuracy", "balanced_accuracy", "f1", "roc_auc"},
    "anomaly": {"anomaly_roc_auc", "anomaly_average_precision"},
    "generator": {"sample_accuracy"},
}


class GatesConfig(Strict):
    """Gates a candidate must pass before it may become @champion. Gaps are absolute differences.

    `min_primary` always applies; every other gate applies when its limit is set (null: not checked,
    and the version's tags say so). A set gate whose metric is missing fails.
    """

    primary_metric: PrimaryMetric = "balanced_accuracy"
    min_primary: float = Field(0.7, ge=0.0)
    # classifiers: group fairness (tasks with sensitive columns) and the worst class
    max_demographic_parity_difference: float | None = Field(None, ge=0.0, le=1.0)
    max_equalized_odds_difference: float | None = Field(None, ge=0.0, le=1.0)
    max_class_recall_gap: float | None = Field(None, ge=0.0, le=1.0)  # mean recall - worst class recall
    max_overfit_gap: float | None = Field(None, ge=0.0, le=1.0)  # |train - test| primary metric
    # autoencoder, vae: relative gap between validation and training reconstruction error
    max_reconstruction_gap: float | None = Field(None, ge=0.0)
    # generators: share of classes the judge recognises in samples; memorisation (1 = as far from the
    # training images as from held-out ones, well below 1 = copying training images)
    min_class_coverage: float | None = Field(None, ge=0.0, le=1.0)
    min_memorization_ratio: float | None = Field(None, ge=0.0)
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


# --------------------------------------------------------------------------------------------- search
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


class ModelEntry(Strict):
    """One (task, family) pair: what to build, how to train, evaluate and gate it. dvc.yaml reads
    every section, so each must be written out in params.yaml (an empty mapping is fine)."""

    task: str
    family: str
    model: dict[str, Any]
    train: TrainConfig
    evaluate: EvaluateConfig
    gates: GatesConfig
    search: SearchConfig | None = None  # stage `search`; null = train on the values above


# ------------------------------------------------------------------------------------------ pretraining
class PretrainingConfig(Strict):
    """Stage `pretraining`: does an encoder trained without labels help a CNN trained on few labels?
    The CNN of `classifier`'s settings, with the encoder's channels, trains from scratch and from the
    encoder of `encoder` (an autoencoder or VAE on the same task) on `label_fraction` of the labels."""

    task: str
    classifier: str  # a model entry of family cnn: its model (dropout) and train settings
    encoder: str  # a model entry of family autoencoder or vae: models/<encoder>/model.pt
    label_fraction: float = Field(0.1, gt=0.0, le=1.0)  # of train and val, stratified, >= 1 per class
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    freeze: list[str] = Field(default_factory=list)  # the pretrained arm: prefixes kept as loaded
    head_lr: float | None = Field(None, gt=0.0, le=10.0)  # the pretrained arm: the head's rate; null = lr
    # false: both arms train the classifier's full `epochs` (best val epoch kept): a fraction of the val
    # split is too few rows to stop on, and stopping early cut the scratch arm off at chance level
    early_stopping: bool = False
    # `all`: the study trains the encoder entry's architecture with its train settings on every training
    # image, labels unused (self-supervised); `model`: models/<encoder>/model.pt as its stage trained it
    # (an anomaly detector saw only its normal classes)
    encoder_data: Literal["all", "model"] = "all"


class ScheduleConfig(Strict):
    cron: str = Field("0 6 * * 1", pattern=r"^\S+( \S+){4}$")  # five cron fields
    timezone: str = "UTC"


class DriftConfig(Strict):
    """The drift monitor: PSI per feature (tables), token length and OOV rate (text), pixel statistics
    (images); above the threshold it triggers a retraining run with the batch."""

    psi_threshold: float = Field(0.2, gt=0.0, le=10.0)
    retrain_on_drift: bool = True
    schedule: ScheduleConfig | None = None  # served by `dlops schedule` next to the retraining flow


class RetrainConfig(Strict):
    """Scheduled retraining (pipelines/retrain.py, `dlops schedule`, `dlops batch`); dvc.yaml reads none
    of it, so changing it reruns nothing."""

    schedule: ScheduleConfig = ScheduleConfig()
    # what a scheduled run takes as its new batch, per task: a source like tasks.<task>.ingest
    # (`{date}` in a path is the run's date; a generator without `seed` draws one from the date)
    batches: dict[str, dict[str, Any]] = Field(default_factory=dict)
    min_batch_rows: int = Field(100, ge=1)
    drift: DriftConfig = DriftConfig()
    lock_timeout_s: float = Field(0.0, ge=0.0, le=86_400.0)  # 0: a second run exits at once
    push: bool = True  # `dvc push` after a run, when a DVC remote is configured
    commit: bool = False  # git-commit dvc.lock, batch manifests and .dvc files after a run
    webhook_url: str | None = Field(None, pattern=r"^https?://")  # failures are POSTed here as JSON


class MlflowConfig(Strict):
    experiment: str = "dlops"
    model_prefix: str = Field("dlops", pattern=r"^[A-Za-z0-9_.-]+$")


class Params(Strict):
    mlflow: MlflowConfig = MlflowConfig()
    retrain: RetrainConfig = RetrainConfig()
    tasks: dict[str, TaskConfig]
    models: dict[str, ModelEntry]
    pretraining: dict[str, PretrainingConfig] = Field(default_factory=dict)

    @field_validator("tasks", "models", "pretraining")
    @classmethod
    def _names_are_safe(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if problem := _plain_name(str(name)):
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _pairs_are_known(self) -> Params:
        from dlops.models.registry import known_families

        families = known_families()
        for name, entry in self.models.items():
            if entry.task not in self.tasks:
                raise ValueError(_unknown("task", entry.task, self.tasks, f"models.{name}.task"))
            if entry.family not in families:
                raise ValueError(_unknown("family", entry.family, families, f"models.{name}.family"))
            _check_entry_fits(name, entry, self.tasks[entry.task])
        for task, spec in self.retrain.batches.items():
            if task not in self.tasks:
                raise ValueError(_unknown("task", task, self.tasks, f"retrain.batches.{task}"))
            try:  # a bad spec fails here, not at 6 am
                batch_source(task, self.tasks[task], spec, "2000-01-01")
            except ConfigError as exc:
                raise ValueError(f"retrain.batches.{task}: {exc}") from None
        for name, study in self.pretraining.items():
            _check_pretraining(f"pretraining.{name}", study, self)
        return self

    def pair(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise ConfigError(_unknown("model", name, self.models, "models"))
        return self.models[name]

    def task(self, name: str) -> TaskConfig:
        if name not in self.tasks:
            raise ConfigError(_unknown("task", name, self.tasks, "tasks"))
        return self.tasks[name]


# ------------------------------------------------------------------------------------------ batches
GENERATORS = ("synthetic-income", "synthetic-reviews")


def batch_source(task: str, task_cfg: TaskConfig, spec: dict[str, Any], date: str) -> Any:
    """The source config a batch spec describes, checked like `tasks.<task>.ingest` is."""
    spec = dict(spec)
    source = spec.get("source", task_cfg.ingest.source)
    spec["source"] = source
    if source in GENERATORS and "seed" not in spec:
        spec["seed"] = int(date.replace("-", ""))  # next week's draw, reproducible from its date
    for key in ("path", "images", "labels"):
        if isinstance(spec.get(key), str):
            spec[key] = spec[key].replace("{date}", date)
    if task_cfg.kind == "images":
        spec.setdefault("size", task_cfg.ingest.size)
        spec.setdefault("channels", task_cfg.ingest.channels)
    union: Any = {"tabular": IngestConfig, "images": ImageIngestConfig, "text": TextIngestConfig}
    try:
        return TypeAdapter(union[task_cfg.kind]).validate_python(spec)
    except ValidationError as exc:
        problems = "; ".join(_batch_problem(e) for e in exc.errors())
        raise ConfigError(f"batch for task {task!r}: {problems}") from None


def _batch_problem(error: Any) -> str:
    """`key: message` of one validation error of a batch spec, the union's source tag left out."""
    key = ".".join(_without_union_tags(["ingest", *map(str, error["loc"])])[1:])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}" if key else message


def _check_entry_fits(name: str, entry: ModelEntry, task: Any) -> None:
    """A family runs on the kinds of task it can read; its gates read metrics its kind produces."""
    from dlops.models.registry import family_kinds, family_tasks

    where = f"models.{name}"
    if task.kind not in family_tasks(entry.family):
        raise ValueError(
            f"{where}.family: {entry.family!r} does not run on {task.kind} tasks "
            f"(it runs on {sorted(family_tasks(entry.family))})"
        )
    kinds = family_kinds(entry.family)
    allowed = set().union(*(PRIMARY_BY_KIND[k] for k in kinds))
    if entry.gates.primary_metric not in allowed:
        raise ValueError(
            f"{where}.gates.primary_metric: {entry.gates.primary_metric!r} is not measured for family "
            f"{entry.family!r}; choose one of {sorted(allowed)}"
        )
    if "classifier" in kinds and task.columns.sensitive:
        for gate in ("max_demographic_parity_difference", "max_equalized_odds_difference"):
            if getattr(entry.gates, gate) is None:
                raise ValueError(
                    f"{where}.gates.{gate}: must be set, task {entry.task!r} has sensitive columns "
                    f"{task.columns.sensitive} (a classifier on it is never promoted unchecked)"
                )
    _check_mitigation(where, entry, task, kinds)
    _check_transfer(where, entry, kinds)
    if entry.search is not None:
        _check_search(where, entry, kinds)
    if "generator" in kinds and entry.evaluate.judge is None:
        raise ValueError(f"{where}.evaluate.judge: a {entry.family} needs a judge CNN to be evaluated")


def _check_search(where: str, entry: ModelEntry, kinds: frozenset[str]) -> None:
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


def _check_pretraining(where: str, study: PretrainingConfig, params: Params) -> None:
    """The study names a task, a CNN entry and an autoencoder or VAE entry, both on that task."""
    if study.task not in params.tasks:
        raise ValueError(_unknown("task", study.task, params.tasks, f"{where}.task"))
    for key, name, families in (
        ("classifier", study.classifier, ("cnn",)),
        ("encoder", study.encoder, ("autoencoder", "vae")),
    ):
        if name not in params.models:
            raise ValueError(_unknown("model", name, params.models, f"{where}.{key}"))
        entry = params.models[name]
        if entry.family not in families:
            wanted = " or ".join(families)
            raise ValueError(f"{where}.{key}: {name!r} is a {entry.family}; it must be a {wanted}")
        if entry.task != study.task:
            raise ValueError(f"{where}.{key}: {name!r} is on task {entry.task!r}, not {study.task!r}")


def _check_transfer(where: str, entry: ModelEntry, kinds: frozenset[str]) -> None:
    """Freezing keeps loaded weights, so it needs a parent; a separate head rate needs a classifier head."""
    if entry.train.freeze and entry.train.init_from is None:
        raise ValueError(
            f"{where}.train.freeze: {entry.train.freeze} freezes weights as loaded, so it needs "
            f"{where}.train.init_from (without a parent they would stay at their random initialisation)"
        )
    if entry.train.head_lr is not None and "classifier" not in kinds:
        raise ValueError(f"{where}.train.head_lr: a {entry.family} has no classifier `head`; set null")


def _check_mitigation(where: str, entry: ModelEntry, task: Any, kinds: frozenset[str]) -> None:
    """Reweighing and fair thresholds name sensitive columns of the task and need a classifier."""
    post = entry.evaluate.postprocess
    for key, attributes in (("train.reweigh", entry.train.reweigh), ("evaluate.postprocess", post)):
        if not attributes:
            continue
        if "classifier" not in kinds or task.kind == "images":
            raise ValueError(f"{where}.{key}: mitigation applies to tabular and text classifiers")
        names = attributes if isinstance(attributes, list) else attributes.attributes
        unknown = [a for a in names if a not in task.columns.sensitive]
        if unknown:
            raise ValueError(
                f"{where}.{key}: {unknown} not among the sensitive columns {task.columns.sensitive} "
                f"of task {entry.task!r}"
            )
    if post is not None and post.tol is not None and post.constraint == "equalized_odds":
        raise ValueError(f"{where}.evaluate.postprocess.tol: fairlearn relaxes demographic parity only")


def _unknown(what: str, name: str, known: Any, where: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{where}: unknown {what} {name!r}; known: {sorted(known)}.{hint}"


# ------------------------------------------------------------------------------------------- loading
def load_params(path: Path | None = None) -> Params:
    """Parse params.yaml into `Params`, or raise ConfigError naming every bad key."""
    import yaml

    path = path or paths().params
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid parameters\n" + _describe(exc, raw)) from None


def _describe(exc: ValidationError, raw: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = _without_union_tags([str(p) for p in err["loc"]])
        key = ".".join(loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            valid = _valid_keys_at(loc[:-1], raw)
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
            if close:
                msg += f"; did you mean {'.'.join([*loc[:-1], close[0]])!r}?"
            elif valid:
                msg += f"; valid keys here: {', '.join(sorted(valid))}"
        elif err["type"] == "value_error":  # our own validators: the message says what and where
            msg = msg.removeprefix("Value error, ")
        elif "input" in err and err["type"] != "missing":
            msg += f" (got {err['input']!r})"
        lines.append(f"  - {key}: {msg}" if key else f"  - {msg}")
    return "\n".join(lines)


_SOURCE_TAGS = {
    "synthetic-income", "table", "sklearn-digits", "idx", "npz", "image-folder",
    "synthetic-reviews", "text-table", "text-folder",
}  # fmt: skip
_KIND_TAGS = {"tabular", "images", "text"}


def _without_union_tags(loc: list[str]) -> list[str]:
    """Pydantic puts the discriminator value into the error path (tasks.t.images.ingest.idx.size);
    drop it so the path is the key a user writes (tasks.t.ingest.size)."""
    out = []
    for i, part in enumerate(loc):
        after_task_name = i == 2 and loc[0] == "tasks"
        if (after_task_name and part in _KIND_TAGS) or (
            i and loc[i - 1] == "ingest" and part in _SOURCE_TAGS
        ):
            continue
        out.append(part)
    return out


def _valid_keys_at(loc: list[str], raw: Any) -> list[str]:
    """Field names (with aliases) of the model at `loc`, walking dicts of sub-models alongside the raw
    YAML, which picks the member of a tagged union (a task's `kind`, an ingest `source`)."""
    model: Any = Params
    node = raw
    for part in loc:
        node = node.get(part) if isinstance(node, dict) else None
        if isinstance(model, _DictOf):  # a dict key such as a task name: step into the value type
            model = model.value
            continue
        if isinstance(model, _Union):
            model = model.pick(_parent(raw, loc, part))
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return []
        by_alias = {f.alias or n: f for n, f in fields.items()}
        field = by_alias.get(part)
        if field is None:
            return []
        model = _submodel(field.annotation)
    if isinstance(model, _Union):
        model = model.pick(node)
    fields = getattr(model, "model_fields", None) or {}
    return [f.alias or n for n, f in fields.items()]


def _parent(raw: Any, loc: list[str], part: str) -> Any:
    """The raw mapping that holds `part` on the path `loc` (the first occurrence)."""
    node = raw
    for step in loc[: loc.index(part)]:
        node = node.get(step) if isinstance(node, dict) else None
    return node


def _submodel(annotation: Any) -> Any:
    import typing

    origin = typing.get_origin(annotation)
    if origin is dict:
        return _DictOf(_submodel(typing.get_args(annotation)[1]))
    if origin is typing.Annotated:
        return _submodel(typing.get_args(annotation)[0])
    args = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if args:
        return _Union(args)
    return annotation


class _DictOf:
    def __init__(self, value: Any) -> None:
        self.value = value


class _Union:
    def __init__(self, members: list[type[BaseModel]]) -> None:
        self.members = members
        self.model_fields = {k: v for m in members for k, v in m.model_fields.items()}

    def pick(self, node: Any) -> Any:
        """The member whose `kind`/`source` literal matches the raw mapping; else all fields merged."""
        import typing

        if isinstance(node, dict):
            for member in self.members:
                for tag in ("kind", "source"):
                    field = member.model_fields.get(tag)
                    if field is not None and node.get(tag) in typing.get_args(field.annotation):
                        return member
        return self


def params_hash(section: BaseModel | dict[str, Any]) -> str:
    """A stable short hash of a params section, for tags and checkpoint fingerprints."""
    data = section.model_dump(mode="json", by_alias=True) if isinstance(section, BaseModel) else section
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------- paths
class Paths:
    """Every file the pipeline reads or writes, relative to the project root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.params = root / "params.yaml"
        self.dvc_yaml = root / "dvc.yaml"
        self.dvc_lock = root / "dvc.lock"
        self.dag = root / "dag.yaml"  # what dvc.yaml reads of params.yaml (dlops dag)
        self.state = root / ".dlops"  # resume checkpoints, locks: never DVC outputs

    def raw(self, task: str) -> Path:
        return self.root / "data" / "raw" / f"{task}.parquet"

    def suite(self, task_cfg: TaskConfig) -> Path:
        return self.root / task_cfg.validate_.suite

    def validation_report(self, task: str) -> Path:
        return self.root / "reports" / "validate" / task / "summary.json"

    def data_docs(self, task: str) -> Path:
        return self.root / "reports" / "validate" / task / "data_docs"

    def processed(self, task: str) -> Path:
        return self.root / "data" / "processed" / task

    def split(self, task: str, split: str) -> Path:
        return self.processed(task) / f"{split}.parquet"

    def image_split(self, task: str, split: str) -> Path:
        return self.processed(task) / f"{split}.npz"

    def raw_split(self, task: str, split: str) -> Path:
        return self.processed(task) / f"{split}_raw.parquet"

    def transform(self, task: str) -> Path:
        return self.processed(task) / "transform.json"

    def model_dir(self, pair: str) -> Path:
        return self.root / "models" / pair

    def checkpoint(self, pair: str) -> Path:
        return self.model_dir(pair) / "model.pt"

    def history(self, pair: str) -> Path:
        return self.root / "reports" / "train" / pair / "history.json"

    def resume_checkpoint(self, pair: str) -> Path:
        return self.state / "checkpoints" / pair / "last.pt"

    def eval_dir(self, pair: str) -> Path:
        return self.root / "reports" / "evaluate" / pair

    def eval_metrics(self, pair: str) -> Path:
        return self.eval_dir(pair) / "metrics.json"

    def search_result(self, pair: str) -> Path:
        """The best parameters `train` reads (or `{"search": null}` for a pair that does not search)."""
        return self.root / "reports" / "search" / f"{pair}.json"

    def search_storage(self) -> str:
        """The default Optuna storage: one SQLite file beside the resume checkpoints, never a DVC output."""
        return f"sqlite:///{self.state / 'optuna.db'}"

    def pretraining_report(self, name: str) -> Path:
        return self.root / "reports" / "pretraining" / f"{name}.json"

    def register_report(self, pair: str) -> Path:
        return self.root / "reports" / "register" / f"{pair}.json"


def paths(root: Path | None = None) -> Paths:
    return Paths((root or Path(os.environ.get("DLOPS_ROOT", Path.cwd()))).resolve())
