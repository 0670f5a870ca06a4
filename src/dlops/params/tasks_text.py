"""Schema of a `kind: text` task: its sources (synthetic reviews, a text table, a text folder),
columns, validation, tokenizer and augmentation."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from dlops.params.fields import LocalPath, PiiScreen, ProjectPath, SplitConfig, Strict, TaskSchema


# ---------------------------------------------------------------------------------------------- ingest
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
    test: LocalPath | None = None  # the official test file (same format and columns), kept as test


class TextFolderSource(Strict):
    """One subfolder per class (e.g. pos/ and neg/, the IMDB layout) of UTF-8 .txt files."""

    source: Literal["text-folder"]
    path: LocalPath
    test: LocalPath | None = None  # the official test folder (e.g. aclImdb/test), kept as the test split
    # The class subfolders to read (e.g. [neg, pos] beside an unlabelled `unsup/`); None reads every one.
    classes: list[str] | None = None


TextIngestConfig = Annotated[
    SyntheticReviewsSource | TextTableSource | TextFolderSource, Field(discriminator="source")
]


# --------------------------------------------------------------------------- columns, validate, preprocess
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
    pii: PiiScreen = Field(default_factory=PiiScreen)


class TokenizerConfig(Strict):
    """Word-level vocabulary fitted on the training split only; ids 0 = padding, 1 = unknown."""

    min_freq: int = Field(2, ge=1)
    max_vocab: int = Field(20_000, ge=10)
    max_length: int = Field(64, ge=4, le=4096)  # longer texts are truncated
    # `head` keeps the first max_length tokens; `head_tail` the first quarter and the last three quarters
    truncate: Literal["head", "head_tail"] = "head"
    lowercase: bool = True
    # > 0: a word outside the vocabulary is read by its character 3-5-grams hashed into this many rows
    # (fastText's subword vectors) instead of as <unk>; the RNN and Transformer use them (models/subwords.py)
    subword_buckets: int = Field(0, ge=0, le=2_000_000)


class TextPreprocessConfig(Strict):
    split: SplitConfig = SplitConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()


class TextAugmentConfig(Strict):
    token_dropout: float = Field(0.0, ge=0.0, le=0.5)  # share of tokens replaced by <unk>
    local_swap: float = Field(0.0, ge=0.0, le=0.5)  # share of adjacent token pairs swapped


# ---------------------------------------------------------------------------------------------------- task
class TextTask(TaskSchema):
    pretraining_classifiers: ClassVar[tuple[str, ...]] = ("rnn", "transformer")  # text_pretraining.py
    pretrains_own_encoder: ClassVar[bool] = True  # masked-token prediction on the training texts

    kind: Literal["text"]
    ingest: TextIngestConfig
    columns: TextColumns
    validate_: TextValidateConfig = Field(alias="validate")
    preprocess: TextPreprocessConfig
    augment: TextAugmentConfig

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
