"""Schema of a `kind: tabular` task: its sources (the synthetic income table, a CSV/Parquet table),
column roles, validation, preprocessing and augmentation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from dlops.params.fields import PiiScreen, ProjectPath, SplitConfig, Strict, TableFile, TaskSchema


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
    """Built-in, seeded census-like table with a tunable bias (see dlops.kinds.tabular.synthetic)."""

    source: Literal["synthetic-income"]
    rows: int = Field(20_000, ge=100, le=5_000_000)
    seed: int = 7
    bias: float = Field(0.0, ge=0.0, le=5.0)
    missing_rate: float = Field(0.02, ge=0.0, le=0.5)
    outlier_rate: float = Field(0.002, ge=0.0, le=0.1)
    shift: IncomeShift = Field(default_factory=IncomeShift)


class TableSource(TableFile):
    """A real CSV/Parquet table: a local path or an http(s) URL pinned by sha256; `test` names the
    dataset's own test file (e.g. a census `.test`), read with its own `csv_options`."""

    source: Literal["table"]
    test: TableFile | None = None


IngestConfig = Annotated[SyntheticIncomeSource | TableSource, Field(discriminator="source")]


class ColumnRoles(Strict):
    """What each column of the raw table is for."""

    target: str
    positive_label: str | int | bool | None = None
    sensitive: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    ignored: list[str] = Field(default_factory=list)
    # Direct identifiers (a customer number, an e-mail): replaced by a keyed pseudonym or dropped at
    # ingest, before anything is written; never a model input.
    identifiers: dict[str, Literal["pseudonymise", "drop"]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _disjoint(self) -> ColumnRoles:
        seen: dict[str, str] = {}
        roles = {
            "target": [self.target],
            "categorical": self.categorical,
            "numeric": self.numeric,
            "ignored": self.ignored,
            "identifiers": list(self.identifiers),
        }
        for role, names in roles.items():
            for name in names:
                if name in seen:
                    raise ValueError(f"column {name!r} is both {seen[name]} and {role}")
                seen[name] = role
        for name in self.identifiers:
            if name in self.sensitive:
                raise ValueError(f"column {name!r} is both sensitive and identifiers")
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
    pii: PiiScreen = Field(default_factory=PiiScreen)


# ---------------------------------------------------------------------------------------------- preprocess
class TabularAugmentConfig(Strict):
    noise_std: float = Field(0.0, ge=0.0, le=1.0)
    mixup_alpha: float = Field(0.0, ge=0.0, le=10.0)


class PreprocessConfig(Strict):
    split: SplitConfig = SplitConfig()
    scaling: Literal["standard", "minmax", "none"] = "standard"
    max_categories: int = Field(50, ge=2, le=10_000)


# ---------------------------------------------------------------------------------------------------- task
class TabularTask(TaskSchema):
    """A table: dvc.yaml reads every section below, so each must be written out in params.yaml."""

    kind: Literal["tabular"]
    ingest: IngestConfig
    columns: ColumnRoles
    validate_: ValidateConfig = Field(alias="validate")
    preprocess: PreprocessConfig
    augment: TabularAugmentConfig

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
