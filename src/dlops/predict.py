"""`dlops predict`: score a file with a registered model, in batches, as `mlflow models serve` would
answer each batch: the same pyfunc, loaded once after its checkpoint's sha256 was checked.

Inputs by suffix: a table or texts (.csv, .tsv, .parquet, .jsonl) as rows with the columns the model
was trained on; images as .npz (the array `x`, or the file's only array) or .npy, shaped (N, C, H, W).
The output (.csv, .parquet or .jsonl) holds one row per input row: `prediction` and the model's other
columns (`proba_<class>`, anomaly scores). It is written atomically: a refused batch leaves no file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlops.errors import BadInput

TABLES = (".csv", ".tsv", ".parquet", ".jsonl")
ARRAYS = (".npz", ".npy")
OUTPUTS = (".csv", ".parquet", ".jsonl")


class PredictInputError(BadInput):
    """The file to score cannot be read, or the model refused some of its rows (named)."""


def read_input(path: Path) -> Any:
    """The rows of `path`: a DataFrame (tables, texts) or an array (images)."""
    import numpy as np
    import pandas as pd

    if not path.is_file():
        raise PredictInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in TABLES + ARRAYS:
        raise PredictInputError(
            f"{path}: unknown input type {suffix!r}; use one of {', '.join(TABLES + ARRAYS)}"
        )
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                names = list(arrays.files)
                if "x" not in names and len(names) != 1:
                    raise PredictInputError(f"{path}: holds arrays {names}; name the images `x`")
                return arrays["x" if "x" in names else names[0]]
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except PredictInputError:
        raise
    except Exception as exc:  # a truncated or malformed file: name it and what the reader said
        raise PredictInputError(f"{path}: cannot be read as {suffix}: {exc}") from None


def predict_file(model: Any, src: Path, dst: Path, batch_size: int, progress: bool = True) -> dict[str, Any]:
    """Score `src` with the pyfunc `model` in batches of `batch_size` rows and write `dst` atomically;
    returns the row count, the seconds spent predicting and the rows per second."""
    import pandas as pd

    from dlops.files import atomic_write

    if dst.suffix.lower() not in OUTPUTS:
        raise PredictInputError(f"{dst}: unknown output type {dst.suffix!r}; use one of {', '.join(OUTPUTS)}")
    rows = read_input(src)
    total = len(rows)
    answers, started = [], time.perf_counter()
    with _bar(total, progress) as advance:
        for start in range(0, total, batch_size):
            batch = (
                rows.iloc[start : start + batch_size]
                if hasattr(rows, "iloc")
                else rows[start : start + batch_size]
            )
            try:
                answer = model.predict(batch)
            except Exception as exc:
                why = (getattr(exc, "message", None) or str(exc))[-1500:]  # MLflow's ends with the reason
                where = f"{src}: rows {start}-{start + len(batch) - 1}"
                raise PredictInputError(f"{where} refused (nothing written): {why}") from None
            answers.append(pd.DataFrame(answer).reset_index(drop=True))
            advance(len(batch))
    seconds = time.perf_counter() - started
    scored = pd.concat(answers, ignore_index=True) if answers else pd.DataFrame()
    suffix = dst.suffix.lower()
    if suffix == ".parquet":
        atomic_write(dst, lambda handle: scored.to_parquet(handle, index=False))
    elif suffix == ".jsonl":
        atomic_write(dst, lambda handle: handle.write(scored.to_json(orient="records", lines=True).encode()))
    else:
        atomic_write(dst, lambda handle: handle.write(scored.to_csv(index=False).encode()))
    return {
        "rows": total,
        "seconds": round(seconds, 3),
        "rows_per_s": round(total / seconds, 1) if seconds else None,
    }


@contextmanager
def _bar(total: int, show: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over `total` rows; yields `advance(rows)` (a no-op when `show` is false)."""
    if not show:
        yield lambda rows: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("scoring", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("rows", total=total)
        yield lambda rows: bar.advance(task, rows)
