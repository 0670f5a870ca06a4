"""Great Expectations suite of a forecasting task: values profiled from a reference table, plus structure.

`draft_series_suite` profiles the raw table (dlops.kinds.timeseries.sources) into a suite to review and
commit; `validate_series` runs it through the shared runner (dlops.data.validation) and names the
offending rows by their `source` (`series@time as written`). The structural checks are stock GE
expectations on columns `add_structure_columns` derives from the rows in file order, per series (rows
whose timestamp did not parse are left to the timestamp not-null check: sorted, no duplicate, no gap):

- `__sorted` in {True} (critical): each timestamp is later than the previous one of its series;
- `__duplicate` in {False} (critical): no (series, timestamp) seen before;
- `__gap_steps` in [0, 0] (warning, mostly 1.0): grid steps missing between the row and the series'
  latest earlier timestamp (in a sorted file: the previous row of its series, round(dt / step) - 1; a
  shuffled file is not also reported as full of gaps), so every gap is named in the log. (Not mostly =
  1 - max_gap_fraction: that share of rows after a gap is about the critical limit below, so gaps
  would never be named while they are still only a warning.)
- mean of `__gap_steps` <= f / (1 - f), f = validate.max_gap_fraction (critical): the mean is
  missing / rows, and missing / (missing + rows) <= f exactly when missing / rows <= f / (1 - f), so
  this is "at most f of the regular grid's timestamps are missing", independent of the table's size;
- min of `__series_length` >= lookback + val_steps + test_steps + 2 gap + horizon (critical): the
  steps one training window needs besides the validation and test periods; the too-short series are
  named in the detail.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from dlops.data.validation import (
    NUMERIC_TYPES,
    WARNING,
    expect,
    fraction,
    name_files,
    run_suite,
    without_ids,
)
from dlops.kinds.timeseries.grid import grid_positions
from dlops.params.tasks_timeseries import SeriesTableSource, SeriesTask

RANGE_MARGIN = 0.5  # value bounds = observed [min, max] widened by 50 % of the range
RANGE_MOSTLY = 0.995  # a few outliers pass; more is a broken feed or a changed unit
SHOWN_SERIES = 5


def covariate_columns(task_cfg: SeriesTask) -> list[str]:
    src = task_cfg.ingest
    return list(src.covariates) if isinstance(src, SeriesTableSource) else []


def declared_series_columns(task_cfg: SeriesTask) -> list[str]:
    """The raw columns the suite covers: series, timestamp, value, covariates, sensitive attributes."""
    return ["series", "timestamp", "value", *covariate_columns(task_cfg), *task_cfg.columns.sensitive]


def min_series_length(task_cfg: SeriesTask) -> int:
    """Regular steps a series needs: one training window (lookback + horizon), validation and test
    periods, and the gap left out before each of them."""
    p = task_cfg.preprocess
    return p.lookback + p.val_steps + p.test_steps + 2 * p.gap + p.horizon


# ------------------------------------------------------------------------------------------------ draft
def draft_series_suite(frame: pd.DataFrame, task_cfg: SeriesTask, name: str) -> dict[str, Any]:
    """Profile a reference raw table into a suite (GE's suite JSON layout as a plain dict)."""
    import great_expectations as gx

    gxe, cfg = gx.expectations, task_cfg.validate_
    missing = [c for c in declared_series_columns(task_cfg) if c not in frame.columns]
    if missing:
        raise ValueError(f"reference series table lacks columns {missing}; it has {list(frame.columns)}")
    not_null, in_set = gxe.ExpectColumnValuesToNotBeNull, gxe.ExpectColumnValuesToBeInSet
    exps = [
        expect(gxe.ExpectTableRowCountToBeBetween, "validate.min_rows", min_value=cfg.min_rows),
        expect(not_null, "every row names its series", column="series"),
        expect(not_null, "every timestamp parsed (as the frequency's dates and times)", column="timestamp"),
        expect(
            not_null,
            "validate.max_missing_fraction: missing values of the forecast column",
            column="value",
            mostly=fraction(1 - cfg.max_missing_fraction),
        ),
        *_value_range(gxe, frame["value"]),
    ]
    for col in covariate_columns(task_cfg):
        why = "covariates are known in advance; validate.max_missing_fraction of them may be missing"
        exps.append(expect(not_null, why, column=col, mostly=fraction(1 - cfg.max_missing_fraction)))
        type_check = gxe.ExpectColumnValuesToBeInTypeList
        exps.append(expect(type_check, "covariates are numeric", column=col, type_list=NUMERIC_TYPES))
    for col in task_cfg.columns.sensitive:
        values = sorted(str(v) for v in frame[col].dropna().unique())
        exps.append(expect(not_null, "every series belongs to a group", column=col))
        why = "a new group breaks the per-group error report"
        exps.append(expect(in_set, why, column=col, value_set=values))
    exps += _structure_checks(gxe, task_cfg)
    meta = {"dlops": {"reference_rows": len(frame), "drafted_by": "dlops expectations init", "task": name}}
    return without_ids(gx.ExpectationSuite(name=name, expectations=exps, meta=meta).to_json_dict())


def _value_range(gxe: Any, values: pd.Series) -> list[Any]:
    observed = values.dropna()
    if observed.empty:
        return []
    low, high = float(observed.min()), float(observed.max())
    margin = RANGE_MARGIN * (high - low) or max(1.0, RANGE_MARGIN * abs(high))
    lower = max(0.0, low - margin) if low >= 0 else low - margin
    bounds = float(f"{lower:.6g}"), float(f"{high + margin:.6g}")
    why = f"reference range [{low:g}, {high:g}] widened by {RANGE_MARGIN:.0%} of it; a few outliers pass"
    between = gxe.ExpectColumnValuesToBeBetween
    return [
        expect(between, why, column="value", min_value=bounds[0], max_value=bounds[1], mostly=RANGE_MOSTLY)
    ]


def _structure_checks(gxe: Any, task_cfg: SeriesTask) -> list[Any]:
    cfg, need = task_cfg.validate_, min_series_length(task_cfg)
    share = cfg.max_gap_fraction
    checks = [
        expect(
            gxe.ExpectColumnValuesToBeInSet,
            "timestamps must be sorted within each series",
            column="__sorted",
            value_set=[True],
        ),
        expect(
            gxe.ExpectColumnValuesToBeInSet,
            "no duplicate (series, timestamp)",
            column="__duplicate",
            value_set=[False],
        ),
        expect(
            gxe.ExpectColumnValuesToBeBetween,
            "missing timestamps (steps of the regular grid) before a row: each gap is named",
            WARNING,
            column="__gap_steps",
            min_value=0,
            max_value=0,
        ),
        expect(
            gxe.ExpectColumnMinToBeBetween,
            "every series covers lookback + val_steps + test_steps + 2 x gap + horizon steps "
            f"(one training window, the validation and test periods) = {need}",
            column="__series_length",
            min_value=need,
            whole_dataset=True,
        ),
    ]
    if share < 1:  # max_gap_fraction 1 allows any share of missing timestamps: no check
        checks.append(
            expect(
                gxe.ExpectColumnMeanToBeBetween,
                "validate.max_gap_fraction: missing / (missing + rows) <= f, "
                "i.e. mean gap steps <= f / (1 - f)",
                column="__gap_steps",
                max_value=round(share / (1 - share), 6),
            )
        )
    return checks


# --------------------------------------------------------------------------------------------- validate
def add_structure_columns(raw: pd.DataFrame, frequency: str) -> pd.DataFrame:
    """A copy with `__sorted`, `__duplicate`, `__gap_steps` and `__series_length` (module docstring)."""
    frame = raw.copy()
    timed = frame["timestamp"].notna()
    rows = pd.DataFrame(
        {
            "series": frame["series"],
            "time": frame["timestamp"],
            "position": grid_positions(frame["timestamp"], frequency),
        }
    )[timed]
    previous = rows.groupby("series", sort=False)[["time", "position"]].shift(1)
    is_sorted = previous["time"].isna() | (rows["time"] > previous["time"])
    in_time = rows.sort_values(["series", "time"], kind="stable")
    earlier = in_time.groupby("series", sort=False)["position"].shift(1)
    gap = ((in_time["position"] - earlier).round() - 1).reindex(rows.index)
    spans = rows.groupby("series", sort=False)["position"].agg(lambda p: round(p.max() - p.min()) + 1)
    frame["__sorted"] = True
    frame.loc[timed, "__sorted"] = is_sorted
    frame["__duplicate"] = False
    frame.loc[timed, "__duplicate"] = rows.duplicated(["series", "time"])
    frame["__gap_steps"] = 0
    frame.loc[timed, "__gap_steps"] = gap.fillna(0.0).clip(lower=0).astype("int64")
    frame["__series_length"] = frame["series"].map(spans).fillna(0).astype("int64")
    return frame.astype({"__sorted": bool, "__duplicate": bool})


def validate_series(
    raw: pd.DataFrame, suite: dict[str, Any], task_cfg: SeriesTask, docs_dir: Path | None
) -> dict[str, Any]:
    """The suite's summary on the raw table; each failure names its rows (`at: series@time`), the
    too-short series and the number of missing timestamps."""
    frame = add_structure_columns(raw, task_cfg.frequency)
    summary = run_suite(frame, suite, declared_series_columns(task_cfg), task_cfg.validate_, docs_dir)
    summary = name_files(summary, frame, noun="at")
    for row in summary["results"]:
        if row["success"] or row["column"] not in frame.columns:
            continue
        if row["expectation"] == "expect_column_min_to_be_between" and row["column"] == "__series_length":
            _name_short_series(row, frame)
        if row["expectation"] == "expect_column_mean_to_be_between" and row["column"] == "__gap_steps":
            _count_missing(row, frame)
    return summary


def _name_short_series(row: dict[str, Any], frame: pd.DataFrame) -> None:
    need = (row.get("kwargs") or {}).get("min_value")
    if need is None:
        return
    lengths = frame.groupby("series", sort=True)["__series_length"].first()
    short = lengths[lengths < need]
    row["series"] = [str(name) for name in short.index[:SHOWN_SERIES]]
    shown = ", ".join(f"{name} ({int(steps)} steps)" for name, steps in short.iloc[:SHOWN_SERIES].items())
    more = f" (+{len(short) - SHOWN_SERIES} more)" if len(short) > SHOWN_SERIES else ""
    row["detail"] += f"; too short: {shown}{more}"


def _count_missing(row: dict[str, Any], frame: pd.DataFrame) -> None:
    missing, present = int(frame["__gap_steps"].sum()), int(frame["timestamp"].notna().sum())
    share = missing / (missing + present) if missing + present else math.nan
    row["detail"] += f"; {missing} missing timestamps = {share:.1%} of the regular grid"
