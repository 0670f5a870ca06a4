"""The raw table of a forecasting task: the seeded generator, or a CSV/Parquet table of series.

`load_series` returns the raw table contract of the timeseries kind (data/raw/<task>.parquet):
`series` (str), `timestamp` (datetime64[ns], tz-naive, NaT where the text did not parse), `value`
(float64), the covariates (float64), the `columns.sensitive` attributes (str), and `source`
(`<series>@<timestamp as written>`), rows in file order (never sorted: validation must see a shuffled
file as shuffled). Reading the file is tabular's `load_table` (local path or sha256-pinned URL, format
from the suffix, `csv_options`); every problem is a `DataSourceError` naming the file.
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlops.data.inputs import DataSourceError
from dlops.data.tables import load_table
from dlops.params import TableSource
from dlops.params.tasks_timeseries import SeriesTableSource, SeriesTask, SyntheticSeriesSource

SHOWN = 5  # bad values named in an error


def load_series(task_cfg: SeriesTask, root: Path) -> pd.DataFrame:
    """The task's raw table (see the module docstring), from the generator or the table it names."""
    src = task_cfg.ingest
    sensitive = list(task_cfg.columns.sensitive)
    if isinstance(src, SyntheticSeriesSource):
        from dlops.kinds.timeseries.synthetic import generate_series

        frame = generate_series(src)
        unknown = [c for c in sensitive if c not in ("region",)]
        if unknown:
            raise DataSourceError(
                f"synthetic-series: columns.sensitive names {unknown}; "
                "the generator's only attribute is 'region'"
            )
        return frame.loc[:, ["series", "timestamp", "value", *sensitive, "source"]]
    return read_series_table(src, sensitive, root)


def read_series_table(src: SeriesTableSource, sensitive: list[str], root: Path) -> pd.DataFrame:
    """A series table in the raw layout; `sensitive` are the per-series attribute columns to keep."""
    where = src.url or str(src.path)
    table = TableSource(
        source="table",
        path=src.path,
        url=src.url,
        sha256=src.sha256,
        format=src.format,
        csv_options=src.csv_options,
    )
    frame = load_table(table, root).reset_index(drop=True)
    _require_columns(frame, src, sensitive, where)
    line = _line_namer(src, where)
    text, timestamps = _timestamps(frame[src.timestamp])
    if src.series_id is None:
        series = pd.Series(src.value, index=frame.index, dtype="str")
    else:
        ids = frame[src.series_id]
        if ids.isna().any():
            lines = ", ".join(line(i) for i in np.flatnonzero(ids.isna())[:SHOWN])
            raise DataSourceError(f"{where}: series_id column {src.series_id!r} is empty at {lines}")
        series = ids.astype("str")
    out = {
        "series": series,
        "timestamp": timestamps,
        "value": _numeric(frame, src.value, "value", where, line),
    }
    for name in src.covariates:
        out[name] = _numeric(frame, name, "covariate", where, line)
    for name in sensitive:
        out[name] = _constant_attribute(frame[name], series, name, where)
    out["source"] = series + "@" + text
    names = ["series", "timestamp", "value", *src.covariates, *sensitive, "source"]
    if len(set(names)) != len(names):
        raise DataSourceError(
            f"{where}: covariate or sensitive column names clash with the raw table's own columns {names}; "
            "rename them in the file"
        )
    return pd.DataFrame(out, columns=names)


def _require_columns(frame: pd.DataFrame, src: SeriesTableSource, sensitive: list[str], where: str) -> None:
    roles = [("timestamp", src.timestamp), ("value", src.value)]
    roles += [("series_id", src.series_id)] if src.series_id else []
    roles += [("covariate", c) for c in src.covariates] + [("sensitive", c) for c in sensitive]
    present = [str(c) for c in frame.columns]
    problems = []
    for role, name in roles:
        if name not in present:
            close = difflib.get_close_matches(name, present, n=1, cutoff=0.5)
            hint = f"closest: {close[0]!r}" if close else "no similar column"
            problems.append(f"  - {name!r} ({role}), {hint}")
    if problems:
        raise DataSourceError(
            f"{where}: missing column(s):\n" + "\n".join(problems) + f"\n  the file's columns: {present}"
        )


def _line_namer(src: SeriesTableSource, where: str) -> Any:
    """How an error names row i: its CSV line (the header is line 1) or its Parquet row (from 1)."""
    csv = src.format == "csv" or (
        src.format == "auto" and not where.lower().split("?")[0].endswith((".parquet", ".pq"))
    )
    return (lambda i: f"line {i + 2}") if csv else (lambda i: f"row {i + 1}")


def _timestamps(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(the text as written, for `source`; the parsed times, tz-aware ones as UTC, NaT where unparsed)."""
    text = column.astype("str").where(column.notna(), "")
    given = column if pd.api.types.is_datetime64_any_dtype(column) else text
    with warnings.catch_warnings():  # "could not infer format": each value is then parsed alone
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(given, errors="coerce", utc=True)
    return text, parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _numeric(frame: pd.DataFrame, name: str, role: str, where: str, line: Any) -> pd.Series:
    column = frame[name]
    if pd.api.types.is_bool_dtype(column):
        raise DataSourceError(f"{where}: {role} column {name!r} is boolean, not a number")
    if pd.api.types.is_numeric_dtype(column):
        return column.astype(np.float64)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(column.notna() & numbers.isna())
    if len(bad):
        shown = ", ".join(f"{column.iloc[i]!r} ({line(i)})" for i in bad[:SHOWN])
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise DataSourceError(f"{where}: {role} column {name!r} is not numeric: {shown}{more}")
    return numbers.astype(np.float64)


def _constant_attribute(column: pd.Series, series: pd.Series, name: str, where: str) -> pd.Series:
    """A sensitive attribute as text, refused when one series carries two values of it."""
    values = column.astype("str").where(column.notna())
    pairs = pd.DataFrame({"series": series, "value": values}).dropna().drop_duplicates()
    repeated = pairs[pairs["series"].duplicated(keep=False)]
    if not repeated.empty:
        first = repeated["series"].iloc[0]
        two = repeated.loc[repeated["series"] == first, "value"].iloc[:2].tolist()
        raise DataSourceError(
            f"{where}: sensitive attribute {name!r} changes within series {first!r}: {two[0]!r} and "
            f"{two[1]!r}; a group attribute must be constant per series"
        )
    return values
