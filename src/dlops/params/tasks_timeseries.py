"""Schema of a `kind: timeseries` task: forecasting the next `horizon` values of one or many series.

Sources: the built-in seeded `synthetic-series` generator, or a `series-table` (CSV/Parquet with a
timestamp column, a value column, optionally a series-id column, known covariates and per-series group
attributes). The raw table always has the columns `series`, `timestamp`, `value`, the covariates and
the group attributes, and `source` (where each row came from: `<series>@<timestamp as written>`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from dlops.params.fields import ProjectPath, Strict, TableFile, TaskSchema

# pandas offset aliases a user may name; each has a default season length (steps per cycle)
SEASON_OF_FREQUENCY = {
    "min": 60, "h": 24, "D": 7, "B": 5, "W": 52, "MS": 12, "ME": 12, "M": 12, "QS": 4, "QE": 4, "Q": 4,
    "YS": 1, "YE": 1, "Y": 1,
}  # fmt: skip


def _frequency(value: str) -> str:
    """A pandas offset alias such as `h`, `D`, `W`, `MS`, or a multiple (`15min`, `2h`)."""
    import re

    match = re.fullmatch(r"(\d*)([A-Za-z]+)(-[A-Z]{3})?", value.strip())
    if match is None or match.group(2) not in SEASON_OF_FREQUENCY:
        raise ValueError(
            f"frequency {value!r} is not one of the pandas offset aliases {sorted(SEASON_OF_FREQUENCY)} "
            "(optionally with a multiple, e.g. '15min', '2h')"
        )
    return value.strip()


# ---------------------------------------------------------------------------------------------- ingest
class SyntheticSeriesSource(Strict):
    """Built-in, seeded series with trend, a daily and a weekly season, noise, level shifts, outliers and
    missing timestamps; each series belongs to a `region`, and the `noisy` region's series are noisier
    and shifted, so a model can serve one region worse than the other (dlops.kinds.timeseries.synthetic)."""

    source: Literal["synthetic-series"]
    series: int = Field(20, ge=1, le=10_000)
    length: int = Field(24 * 7 * 6, ge=48, le=1_000_000)  # steps per series
    frequency: Literal["h", "D"] = "h"
    start: str = "2025-01-06"  # a Monday
    seed: int = 5
    noise: float = Field(0.05, ge=0.0, le=5.0)  # noise std relative to the series level
    noisy_region_factor: float = Field(3.0, ge=1.0, le=20.0)  # noise multiplier of the noisy region
    missing_rate: float = Field(0.005, ge=0.0, le=0.3)  # share of timestamps dropped
    outlier_rate: float = Field(0.002, ge=0.0, le=0.1)
    level_shifts: int = Field(1, ge=0, le=10)  # per series, at random times
    # appended after the first `length` steps: a batch continues its series (`offset` steps later)
    offset: int = Field(0, ge=0)

    @property
    def frequency_alias(self) -> str:
        return self.frequency


class SeriesTableSource(TableFile):
    """A real CSV/Parquet table of series: a local path, or an http(s) URL pinned by sha256."""

    source: Literal["series-table"]
    timestamp: str = "timestamp"  # column parsed as dates and times
    value: str = "value"  # the column forecast
    series_id: str | None = None  # null: the file is one series
    covariates: list[str] = Field(default_factory=list)  # numeric, known in advance (calendar, price)
    frequency: Annotated[str, Field(min_length=1)]  # pandas offset alias of the timestamps: h, D, MS, ...

    @model_validator(mode="after")
    def _roles(self) -> SeriesTableSource:
        _frequency(self.frequency)
        roles = [self.timestamp, self.value, *([self.series_id] if self.series_id else []), *self.covariates]
        if len(set(roles)) != len(roles):
            raise ValueError(f"timestamp, value, series_id and covariates must be distinct columns: {roles}")
        return self

    @property
    def frequency_alias(self) -> str:
        return self.frequency


SeriesIngestConfig = Annotated[SyntheticSeriesSource | SeriesTableSource, Field(discriminator="source")]


# --------------------------------------------------------------------------- columns, validate, preprocess
class SeriesColumns(Strict):
    """`sensitive`: per-series group attributes (columns of the table, constant within a series) whose
    groups' forecast errors are compared (the fairness table and `max_group_error_gap`)."""

    target: Literal["value"] = "value"
    sensitive: list[str] = Field(default_factory=list)


class SeriesValidateConfig(Strict):
    suite: ProjectPath
    draft_if_missing: bool = False
    min_rows: int = Field(100, ge=1)
    max_missing_fraction: float = Field(0.05, ge=0.0, le=1.0)  # missing values of `value`
    max_gap_fraction: float = Field(0.05, ge=0.0, le=1.0)  # missing timestamps of the regular grid


class SeriesPreprocessConfig(Strict):
    """Split by time, never shuffled: each series' last `test_periods` steps are test, the `val_periods`
    before them validation, `gap` steps left out before each; windows of `lookback` inputs and `horizon`
    targets; scaling fitted on each series' training period only."""

    lookback: int = Field(48, ge=2, le=10_000)
    horizon: int = Field(12, ge=1, le=1_000)
    backtest_folds: int = Field(3, ge=1, le=100)  # rolling origins over the test period, `horizon` apart
    test_periods: int | None = Field(None, ge=1)  # null: horizon x backtest_folds
    val_periods: int | None = Field(None, ge=1)  # null: the same as test
    gap: int = Field(0, ge=0)
    stride: int = Field(1, ge=1)  # steps between the origins of consecutive training windows
    missing: Literal["interpolate", "mask"] = "interpolate"  # mask: an observed-flag input, no loss there
    scaling: Literal["standard", "none"] = "standard"
    seasonality: int | None = Field(None, ge=1)  # season length in steps; null: from the frequency
    interval: float = Field(0.8, gt=0.0, lt=1.0)  # nominal coverage of the prediction intervals
    # a batch may start at most this many steps after its series' last timestamp
    max_batch_gap: int = Field(0, ge=0)

    @property
    def test_steps(self) -> int:
        return self.test_periods or self.horizon * self.backtest_folds

    @property
    def val_steps(self) -> int:
        return self.val_periods or self.test_steps


class SeriesAugmentConfig(Strict):
    jitter_std: float = Field(0.0, ge=0.0, le=1.0)  # Gaussian noise on the (scaled) input window
    scale_std: float = Field(0.0, ge=0.0, le=0.5)  # one random factor 1 + N(0, s) per window


# ---------------------------------------------------------------------------------------------------- task
class SeriesTask(TaskSchema):
    kind: Literal["timeseries"]
    ingest: SeriesIngestConfig
    columns: SeriesColumns
    validate_: SeriesValidateConfig = Field(alias="validate")
    preprocess: SeriesPreprocessConfig
    augment: SeriesAugmentConfig

    mitigation: ClassVar[bool] = False  # reweighing and fair thresholds are for classifiers
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def batch_defaults(self) -> dict[str, Any]:
        """A batch reads its table like the task's own source: same columns and frequency."""
        src = self.ingest
        if isinstance(src, SeriesTableSource):
            keep = ("format", "csv_options", "timestamp", "value", "series_id", "covariates", "frequency")
            return {key: getattr(src, key) for key in keep}
        keep = ("series", "length", "frequency", "start", "seed", "noise", "noisy_region_factor")
        return {key: getattr(src, key) for key in keep}  # the same draw, continued by `offset`

    @property
    def frequency(self) -> str:
        return self.ingest.frequency_alias

    def season_length(self) -> int:
        """Steps per season: params' `preprocess.seasonality`, else the frequency's usual cycle."""
        if self.preprocess.seasonality is not None:
            return self.preprocess.seasonality
        import re

        match = re.fullmatch(r"(\d*)([A-Za-z]+)(-[A-Z]{3})?", self.frequency)
        base = SEASON_OF_FREQUENCY[match.group(2)] if match else 1
        multiple = int(match.group(1)) if match and match.group(1) else 1
        return max(1, base // multiple)
