"""Raw tables: the built-in generator or a real CSV/Parquet file (local, or an http(s) URL pinned by sha256).

Every failure is a `DataSourceError` naming the file or URL, so a bad source stops ingest with a message
that says what to fix; nothing half-written is ever left in data/raw or in the download cache.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pandas as pd

from dlops.data.inputs import DataSourceError
from dlops.data.tables import load_table
from dlops.params import ColumnRoles, SyntheticIncomeSource, TabularTask


def load_raw(task_cfg: TabularTask, root: Path) -> pd.DataFrame:
    """The task's raw table with exactly its declared, non-ignored columns."""
    src = task_cfg.ingest
    if isinstance(src, SyntheticIncomeSource):
        from dlops.kinds.tabular.synthetic import generate_income

        # the generator's own columns: a task may use a subset of them
        return check_columns(generate_income(src), task_cfg.columns, "synthetic-income", undeclared_ok=True)
    return check_columns(load_table(src, root), task_cfg.columns, where=src.url or str(src.path))


def check_columns(
    df: pd.DataFrame, columns: ColumnRoles, where: str, undeclared_ok: bool = False
) -> pd.DataFrame:
    """Require every declared column and refuse undeclared ones (dropped with `undeclared_ok`); drop the
    ignored ones."""
    roles = {
        "target": [columns.target],
        "sensitive": columns.sensitive,
        "numeric": columns.numeric,
        "categorical": columns.categorical,
        "ignored": columns.ignored,
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
    declared = {name for names in roles.values() for name in names}
    undeclared = [c for c in present if c not in declared]
    # a new column upstream is a schema change someone should look at, not something to drop silently
    if undeclared and not undeclared_ok:
        raise DataSourceError(
            f"{where}: column(s) {undeclared} not declared in params.yaml; give each a role under "
            "tasks.<task>.columns (list it in columns.ignored to drop it)"
        )
    keep = [c for c in df.columns if c in declared and c not in set(columns.ignored)]
    return df.loc[:, keep]
