"""Raw tables: the built-in generator or a real CSV/Parquet file (local, or an http(s) URL pinned by sha256).

Every failure is a `DataSourceError` naming the file or URL, so a bad source stops ingest with a message
that says what to fix; nothing half-written is ever left in data/raw or in the download cache.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlops.data.inputs import DataSourceError
from dlops.data.splitting import GIVEN_SPLIT, with_given_test
from dlops.data.tables import load_table
from dlops.params import ColumnRoles, SyntheticIncomeSource, TableSource, TabularTask

RECORD = "__record"  # a hash of the whole source row, ignored columns included: exact duplicate records


def load_raw(task_cfg: TabularTask, root: Path) -> pd.DataFrame:
    """The task's raw table with exactly its declared, non-ignored columns, the split column when one is
    given, and `__record` (see `record_hash`); a `test:` sub-source's rows follow with `__split`."""
    src = task_cfg.ingest
    split_column = task_cfg.preprocess.split.column
    if isinstance(src, SyntheticIncomeSource):
        from dlops.kinds.tabular.synthetic import generate_income

        # the generator's own columns: a task may use a subset of them
        frame = with_record(generate_income(src))
        return check_columns(frame, task_cfg.columns, "synthetic-income", undeclared_ok=True)
    return with_given_test(task_cfg, lambda cfg: _read(cfg.ingest, root, cfg.columns, split_column))


def _read(src: TableSource, root: Path, columns: ColumnRoles, split_column: str | None) -> pd.DataFrame:
    extra = [split_column] if split_column else []
    return check_columns(with_record(load_table(src, root)), columns, src.url or str(src.path), extra=extra)


def with_record(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with `__record`: a hash of each row over all its columns (the leakage check's key)."""
    hashed = pd.util.hash_pandas_object(_hashable(frame), index=False).to_numpy().view("int64")
    return frame.assign(**{RECORD: hashed})


def _hashable(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with cells pandas cannot hash (lists, dicts, arrays: a Parquet list column, a JSON
    array) as their text, so the hashes work and validate can name the column's odd type."""

    def unhashable(value: Any) -> bool:
        return isinstance(value, list | dict | set | np.ndarray)

    odd = [c for c in frame.columns if frame[c].dtype == object and frame[c].map(unhashable).any()]
    return frame.assign(**{c: frame[c].map(repr) for c in odd}) if odd else frame


def feature_key(frame: pd.DataFrame, columns: ColumnRoles) -> pd.Series:
    """A hash of each row's declared features (numeric, categorical, sensitive): rows of different
    records that look the same to a model share it."""
    declared = dict.fromkeys([*columns.numeric, *columns.categorical, *columns.sensitive])
    features = [c for c in declared if c in frame.columns]  # validate reports a missing one by name
    hashed = pd.util.hash_pandas_object(_hashable(frame[features]), index=False).to_numpy()
    return pd.Series(hashed, index=frame.index)


def feature_duplicates(frame: pd.DataFrame, columns: ColumnRoles) -> dict[str, Any]:
    """How many rows repeat another row's features (kept in one split by preprocess), and their share."""
    repeated = int(feature_key(frame, columns).duplicated().sum())
    return {
        "rows": repeated,
        "fraction": round(repeated / max(len(frame), 1), 6),
        "handled": "feature-identical rows are kept in one split",
    }


def hidden_columns(frame: pd.DataFrame, split: Any, columns: ColumnRoles | None = None) -> list[str]:
    """The columns of a raw table that are not inputs: `__record`, the split column and the
    (pseudonymised) identifiers."""
    identifiers = list(columns.identifiers) if columns is not None else []
    names = [RECORD, GIVEN_SPLIT, *([split.column] if split.column else []), *identifiers]
    return [c for c in dict.fromkeys(names) if c in frame.columns]


def check_columns(
    df: pd.DataFrame,
    columns: ColumnRoles,
    where: str,
    undeclared_ok: bool = False,
    extra: list[str] | None = None,
) -> pd.DataFrame:
    """Require every declared column (and the `extra` ones) and refuse undeclared ones (dropped with
    `undeclared_ok`); drop the ignored ones; pseudonymise or drop the identifiers, so that no original
    identifier reaches data/raw, a batch or the DVC cache."""
    extra = [*(extra or []), *([RECORD] if RECORD in df.columns else [])]
    roles = {
        "split": [c for c in extra if c != RECORD],
        "target": [columns.target],
        "sensitive": columns.sensitive,
        "numeric": columns.numeric,
        "categorical": columns.categorical,
        "ignored": columns.ignored,
        "identifier": list(columns.identifiers),
    }
    present = [str(c) for c in df.columns]
    problems = []
    for role, names in roles.items():
        for name in names:
            if name not in present:
                close = difflib.get_close_matches(name, present, n=1, cutoff=0.5)
                hint = f", closest existing column: {close[0]!r}" if close else ", no similar column"
                problems.append(f"  - {name!r} ({role}){hint}")
    if problems:
        raise DataSourceError(f"{where}: missing declared column(s):\n" + "\n".join(problems))
    declared = {name for names in roles.values() for name in names} | set(extra)
    undeclared = [c for c in present if c not in declared]
    # a new column upstream is a schema change someone should look at, not something to drop silently
    if undeclared and not undeclared_ok:
        raise DataSourceError(
            f"{where}: column(s) {undeclared} not declared in params.yaml; give each a role under "
            "tasks.<task>.columns (list it in columns.ignored to drop it)"
        )
    from dlops.privacy.pseudonyms import protect_identifiers

    keep = [c for c in df.columns if c in declared and c not in set(columns.ignored)]
    return protect_identifiers(df.loc[:, keep], columns.identifiers)
