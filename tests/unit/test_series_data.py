"""Timeseries data: the synthetic-series generator, series-table loading and the series suite."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dlops.data.inputs import DataSourceError
from dlops.data.validation import DataValidationError, raise_on_failure
from dlops.kinds.timeseries.sources import load_series
from dlops.kinds.timeseries.suite import draft_series_suite, validate_series
from dlops.kinds.timeseries.synthetic import generate_series
from dlops.params.tasks_timeseries import SeriesTask, SyntheticSeriesSource

RAW_COLUMNS = ["series", "timestamp", "value"]


def synthetic(**kwargs: Any) -> pd.DataFrame:
    return generate_series(SyntheticSeriesSource(source="synthetic-series", **kwargs))


def task(ingest: dict[str, Any], sensitive: list[str] | None = None) -> SeriesTask:
    return SeriesTask.model_validate(
        {
            "kind": "timeseries",
            "ingest": ingest,
            "columns": {"sensitive": sensitive or []},
            "validate": {"suite": "expectations/load.json", "min_rows": 20},
            "preprocess": {"lookback": 24, "horizon": 6, "backtest_folds": 2},  # needs 54 steps per series
            "augment": {},
        }
    )


def electricity(series: int = 3, hours: int = 120) -> pd.DataFrame:
    """An electricity-load-style table: hourly rows per meter, a temperature covariate, a zone."""
    times = pd.date_range("2014-01-01", periods=hours, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    rows = [
        {
            "timestamp": t,
            "series_id": f"MT_{s + 1:03d}",
            "load": 100.0 + 10 * s + np.sin(k / 4),
            "temperature": 5.0 + k % 24 / 4,
            "zone": "north" if s % 2 == 0 else "south",
        }
        for s in range(series)
        for k, t in enumerate(times)
    ]
    return pd.DataFrame(rows)


ELECTRICITY = {"series_id": "series_id", "value": "load", "covariates": ["temperature"], "frequency": "h"}


def load_csv(frame: pd.DataFrame, folder: Path, name: str = "load.csv") -> tuple[pd.DataFrame, SeriesTask]:
    frame.to_csv(folder / name, index=False)
    cfg = task({"source": "series-table", "path": name, **ELECTRICITY}, sensitive=["zone"])
    return load_series(cfg, folder), cfg


# ------------------------------------------------------------------------------------------- synthetic
def test_generator_is_deterministic_with_the_raw_columns() -> None:
    first, again, other = synthetic(), synthetic(), synthetic(seed=6)
    assert list(first.columns) == [*RAW_COLUMNS, "region", "source"]
    assert str(first["timestamp"].dtype) == "datetime64[ns]" and first["value"].dtype == np.float64
    assert first.equals(again) and not first["value"].equals(other["value"])
    assert sorted(first["series"].unique()) == [f"S{i:03d}" for i in range(20)]
    assert 0.98 * 20 * 1008 < len(first) < 20 * 1008
    assert first.groupby("series")["region"].first().tolist() == ["calm", "noisy"] * 10
    assert first["source"].iloc[0] == "S000@2025-01-06T00:00:00"
    assert first["timestamp"].iloc[0] == pd.Timestamp("2025-01-06")


def test_the_default_size_generates_fast() -> None:
    start = time.perf_counter()
    synthetic()
    assert time.perf_counter() - start < 0.5


def test_the_noisy_region_is_noisier_and_timestamps_go_missing() -> None:
    clean = synthetic(series=8, missing_rate=0.0, outlier_rate=0.0, level_shifts=0)
    # second differences remove level, trend and (mostly) the smooth seasons; what is left is noise
    rough = clean.groupby("series")["value"].agg(lambda v: v.diff().diff().std() / v.mean())
    region = clean.groupby("series")["region"].first()
    assert rough[region == "noisy"].min() > 2 * rough[region == "calm"].max()
    assert len(clean) == 8 * 1008

    gappy = synthetic(series=4, missing_rate=0.05)
    steps = gappy.groupby("series")["timestamp"].diff().dropna()
    assert (steps > pd.Timedelta("1h")).sum() > 20 and len(gappy) < 4 * 1008


def test_an_offset_continues_the_same_series_exactly() -> None:
    kwargs = {"series": 3, "missing_rate": 0.05, "outlier_rate": 0.01, "level_shifts": 2}
    whole = synthetic(length=1500, **kwargs)
    later = synthetic(length=600, offset=900, **kwargs)
    tail = whole[whole["timestamp"] >= pd.Timestamp("2025-01-06") + pd.Timedelta(hours=900)]
    pd.testing.assert_frame_equal(tail.reset_index(drop=True), later.reset_index(drop=True))


def test_daily_series_start_at_the_given_date() -> None:
    daily = synthetic(series=2, length=400, frequency="D", start="2024-01-01")
    assert daily["timestamp"].iloc[1] - daily["timestamp"].iloc[0] >= pd.Timedelta("1D")
    assert daily["timestamp"].min() == pd.Timestamp("2024-01-01")


# ------------------------------------------------------------------------------------------------ load
def test_a_monthly_single_series_csv(tmp_path: Path) -> None:
    months = pd.period_range("1949-01", periods=36, freq="M").strftime("%Y-%m")
    pd.DataFrame({"Month": months, "Passengers": np.arange(112, 148)}).to_csv(
        tmp_path / "air.csv", index=False
    )
    ingest = {"source": "series-table", "path": "air.csv", "timestamp": "Month", "value": "Passengers"}
    raw = load_series(task({**ingest, "frequency": "MS"}), tmp_path)
    assert list(raw.columns) == [*RAW_COLUMNS, "source"]
    assert set(raw["series"]) == {"Passengers"} and raw["value"].dtype == np.float64
    assert raw["timestamp"].iloc[2] == pd.Timestamp("1949-03-01")
    assert raw["source"].iloc[0] == "Passengers@1949-01"


def test_an_hourly_multi_series_csv_and_parquet_read_alike(tmp_path: Path) -> None:
    table = electricity()
    from_csv, _ = load_csv(table, tmp_path)
    table.assign(timestamp=pd.to_datetime(table["timestamp"])).to_parquet(tmp_path / "load.parquet")
    cfg = task({"source": "series-table", "path": "load.parquet", **ELECTRICITY}, sensitive=["zone"])
    from_parquet = load_series(cfg, tmp_path)
    assert list(from_csv.columns) == [*RAW_COLUMNS, "temperature", "zone", "source"]
    assert str(from_csv["timestamp"].dtype) == "datetime64[ns]"
    assert from_csv["source"].iloc[1] == "MT_001@2014-01-01 01:00:00"
    pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_tz_aware_timestamps_become_utc_and_bad_text_nat(tmp_path: Path) -> None:
    table = electricity(series=1, hours=3)
    table["timestamp"] = ["2014-03-30 01:00:00+01:00", "2014-03-30 03:00:00+02:00", "soon"]
    raw, _ = load_csv(table, tmp_path)
    assert raw["timestamp"].iloc[:2].tolist() == [
        pd.Timestamp("2014-03-30 00:00"),
        pd.Timestamp("2014-03-30 01:00"),
    ]
    assert pd.isna(raw["timestamp"].iloc[2]) and raw["source"].iloc[2] == "MT_001@soon"


def test_a_missing_column_names_the_file_and_the_closest_column(tmp_path: Path) -> None:
    electricity().to_csv(tmp_path / "load.csv", index=False)
    cfg = task({"source": "series-table", "path": "load.csv", **ELECTRICITY, "value": "lod"})
    with pytest.raises(
        DataSourceError, match=r"(?s)load.csv: missing column.*'lod' \(value\), closest: 'load'"
    ):
        load_series(cfg, tmp_path)


def test_a_non_numeric_value_names_its_line(tmp_path: Path) -> None:
    table = electricity().astype({"load": object})
    table.loc[4, "load"] = "n/a?"
    with pytest.raises(
        DataSourceError, match=r"load.csv: value column 'load' is not numeric: 'n/a\?' \(line 6\)"
    ):
        load_csv(table, tmp_path)


def test_empty_files_and_changing_attributes_are_refused(tmp_path: Path) -> None:
    (tmp_path / "load.csv").write_text("")
    cfg = task({"source": "series-table", "path": "load.csv", **ELECTRICITY})
    with pytest.raises(DataSourceError, match="load.csv: the file is empty"):
        load_series(cfg, tmp_path)
    table = electricity()
    table.loc[5, "zone"] = "east"
    with pytest.raises(DataSourceError, match="'zone' changes within series 'MT_001': 'north' and 'east'"):
        load_csv(table, tmp_path)


# -------------------------------------------------------------------------------------------- validate
@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The suite drafted from a clean table, and its summary on the clean and on broken variants."""
    folder = tmp_path_factory.mktemp("series")
    clean = electricity()
    raw, cfg = load_csv(clean, folder)
    suite = draft_series_suite(raw, cfg, "load")
    variants = {
        "clean": clean,
        "shuffled": clean.iloc[[*range(0, 11), 12, 11, *range(13, len(clean))]],
        "duplicated": pd.concat([clean.iloc[:200], clean.iloc[[150]], clean.iloc[200:]]),
        "short": clean[(clean["series_id"] != "MT_002") | (clean.index % 120 < 40)],
        "gaps": clean.drop(index=[130, 131, 250]),
        "holes": clean.drop(index=range(1, 120, 4)),  # 30 of 360 timestamps missing, 8.3%
    }
    return {
        name: validate_series(load_csv(table, folder, f"{name}.csv")[0], suite, cfg, None)
        for name, table in variants.items()
    }


def failed(summary: dict[str, Any], column: str) -> dict[str, Any]:
    return next(r for r in summary["results"] if r["column"] == column and not r["success"])


def test_a_clean_file_passes(checked: dict[str, dict[str, Any]]) -> None:
    summary = checked["clean"]
    assert summary["success"] and summary["failed_warning"] == 0, summary["results"]
    raise_on_failure(summary, "clean.csv")


def test_a_shuffled_file_fails_naming_the_series_and_time(checked: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(DataValidationError, match=r"__sorted.*at: MT_001@2014-01-01 11:00:00"):
        raise_on_failure(checked["shuffled"], "shuffled.csv")
    assert checked["shuffled"]["failed_warning"] == 0  # gaps are counted in time order: a swap is no gap


def test_a_duplicated_row_fails_naming_it(checked: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(DataValidationError, match=r"__duplicate.*at: MT_002@2014-01-02 06:00:00"):
        raise_on_failure(checked["duplicated"], "duplicated.csv")


def test_a_too_short_series_fails_naming_it(checked: dict[str, dict[str, Any]]) -> None:
    row = failed(checked["short"], "__series_length")
    assert row["severity"] == "critical" and row["series"] == ["MT_002"]
    assert "too short: MT_002 (40 steps)" in row["detail"]
    assert "lookback + val_steps + test_steps + 2 x gap + horizon" in row["why"]


def test_gaps_are_a_warning_naming_where_they_end(checked: dict[str, dict[str, Any]]) -> None:
    summary = checked["gaps"]
    assert summary["success"] and summary["failed_warning"] == 1
    row = failed(summary, "__gap_steps")
    assert row["severity"] == "warning"
    assert row["at"] == ["MT_002@2014-01-01 12:00:00", "MT_003@2014-01-01 11:00:00"]


def test_too_many_missing_timestamps_fail_with_their_count(checked: dict[str, dict[str, Any]]) -> None:
    summary = checked["holes"]
    assert not summary["success"] and summary["failed_critical"] == 1
    critical = next(r for r in summary["results"] if r["severity"] == "critical" and not r["success"])
    assert (critical["expectation"], critical["column"]) == (
        "expect_column_mean_to_be_between",
        "__gap_steps",
    )
    assert "30 missing timestamps = 8.3% of the regular grid" in critical["detail"]
