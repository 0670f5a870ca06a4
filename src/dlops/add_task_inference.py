"""What `dlops add-task` reads off a data file: the task kind, the `ingest` source that reads it, and the
column roles (label, text, sensitive, ignored, numeric, categorical), each inferred one said so.

Plain functions over the file; nothing is written. Every failure is a `BadInput` naming the file and the
column or option to give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlops.errors import BadInput

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LABEL_NAMES = ("label", "target", "class", "y", "outcome")
# protected attributes, by column name (lowercase, separators as `_`): measured for fairness
SENSITIVE_NAMES = (
    "sex", "gender", "race", "ethnicity", "ethnic_group", "age", "age_group", "religion", "disability",
    "nationality", "national_origin", "native_country", "country_of_birth", "marital_status",
    "sexual_orientation",
)  # fmt: skip
MAX_GROUPS = 20  # a sensitive column with more values than this (a raw age) is a feature, not a group
FREE_TEXT_CHARS = 30  # a string column whose values average this long, and are mostly unique, is text
FREE_TEXT_UNIQUE = 0.5


@dataclass(frozen=True)
class Choices:
    """What the user said on the command line; None = infer it."""

    label: str | None = None
    text: str | None = None
    sensitive: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    kind: str | None = None
    test: str | None = None


@dataclass
class Inferred:
    """The task kind, its `ingest` and `columns` sections, and what was inferred, in words."""

    kind: str
    ingest: dict[str, Any]
    columns: dict[str, Any]
    notes: list[str] = field(default_factory=list)


class AddTaskError(BadInput, ValueError):
    """`dlops add-task` cannot build the task; the message names the file, column or option."""


def infer(file: Path, written: str, choices: Choices, root: Path) -> Inferred:
    """The task a data file makes. `written` is the path as params.yaml will hold it."""
    if not file.exists():
        raise AddTaskError(f"{written}: not found (looked at {file})")
    test = _written_test(choices.test, root)
    if file.is_dir():
        return _folder(file, written, choices, test)
    name = file.name.lower()
    if "idx3" in name:
        return _idx(file, written, choices, test, root)
    if name.endswith(".npz"):
        return _images({"source": "npz", "path": written, **_test_key(test)}, choices)
    if name.endswith(JSONL_SUFFIXES):
        return _table(file, written, choices, test, jsonl=True)
    if name.endswith(TABLE_SUFFIXES):
        return _table(file, written, choices, test, jsonl=False)
    raise AddTaskError(
        f"{written}: cannot tell what this file holds from its name; give a table (.csv .tsv .parquet "
        ".jsonl), an IDX images file (its name holds idx3), an .npz, or a folder with one subfolder per class"
    )


# ---------------------------------------------------------------------------------------------- images
def _images(ingest: dict[str, Any], choices: Choices) -> Inferred:
    if choices.kind not in (None, "images"):
        raise AddTaskError(
            f"{ingest.get('path') or ingest['images']}: holds images, not a {choices.kind} task"
        )
    return Inferred("images", ingest, {"sensitive": []}, [f"kind: images ({ingest['source']} source)"])


def _idx(file: Path, written: str, choices: Choices, test: str | None, root: Path) -> Inferred:
    labels = _idx_labels(file, written)
    ingest: dict[str, Any] = {"source": "idx", "images": written, "labels": labels}
    if test is not None:
        ingest["test"] = {"images": test, "labels": _idx_labels(_full(test, root), test)}
    return _images(ingest, choices)


def _idx_labels(file: Path, written: str) -> str:
    """The IDX labels file beside an images file: idx3 -> idx1 (and images -> labels), as MNIST names
    them (train-images-idx3-ubyte, train-labels-idx1-ubyte)."""
    names = [file.name.replace("idx3", "idx1").replace("images", "labels"), file.name.replace("idx3", "idx1")]
    for candidate in dict.fromkeys(names):
        if (file.parent / candidate).is_file():
            return (Path(written).parent / candidate).as_posix()
    raise AddTaskError(
        f"{written}: no IDX labels file beside it; looked for {' and '.join(dict.fromkeys(names))} in "
        f"{file.parent}"
    )


def _folder(folder: Path, written: str, choices: Choices, test: str | None) -> Inferred:
    """One subfolder per class: images (PNG/JPEG) make an image-folder task, .txt files a text-folder."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [f for d in classes for f in d.rglob("*") if f.is_file() and not f.name.startswith(".")]
    images = sum(f.suffix.lower() in IMAGE_SUFFIXES for f in files)
    texts = sum(f.suffix.lower() == ".txt" for f in files)
    if len(classes) < 2 or not (images or texts):
        raise AddTaskError(
            f"{written}: a folder must hold one subfolder per class (at least 2) of images "
            f"({', '.join(IMAGE_SUFFIXES)}) or .txt files; found {len(classes)} subfolder(s), "
            f"{images} image(s), {texts} .txt file(s)"
        )
    if images >= texts:
        return _images({"source": "image-folder", "path": written, **_test_key(test)}, choices)
    if choices.kind not in (None, "text"):
        raise AddTaskError(f"{written}: holds .txt files, not a {choices.kind} task")
    ingest = {"source": "text-folder", "path": written, **_test_key(test)}
    columns: dict[str, Any] = {"positive_label": None, "sensitive": []}
    return Inferred(
        "text", ingest, columns, [f"kind: text (text-folder: {', '.join(d.name for d in classes)})"]
    )


# ---------------------------------------------------------------------------------------------- tables
def _table(file: Path, written: str, choices: Choices, test: str | None, jsonl: bool) -> Inferred:
    frame = _read(file, written, jsonl)
    columns = [str(c) for c in frame.columns]
    given = [("--label", choices.label), ("--text", choices.text)]
    given += [("--sensitive", c) for c in choices.sensitive or []] + [("--ignore", c) for c in choices.ignore]
    for option, name in given:
        if name is not None and name not in columns:
            raise AddTaskError(f"{written}: {option} {name!r} is not a column; its columns are {columns}")
    label = choices.label or _label_column(columns, written)
    text = choices.text or (None if choices.kind == "tabular" else _free_text(frame, label))
    if choices.kind == "text" and text is None:
        raise AddTaskError(
            f"{written}: no column looks like free text (strings averaging {FREE_TEXT_CHARS}+ characters, "
            f"mostly unique); name it with --text (columns: {columns})"
        )
    if jsonl and text is None:
        raise AddTaskError(
            f"{written}: a JSONL file is read as a text task only (the `table` source reads CSV and "
            "Parquet), and no key looks like free text; name it with --text, or convert the file to CSV"
        )
    notes = [f"label: {label}" + ("" if choices.label else " (named like a label)")]
    sensitive = _sensitive(frame, [c for c in columns if c not in (label, text)], choices, notes)
    positive = _positive_label(frame[label], notes)
    if text is not None:
        return _text_table(written, text, label, sensitive, positive, test, notes, choices)
    return _tabular(frame, written, label, sensitive, positive, test, notes, choices)


def _read(file: Path, written: str, jsonl: bool) -> Any:
    import pandas as pd

    if jsonl:
        try:
            return pd.read_json(file, lines=True)
        except ValueError as exc:
            raise AddTaskError(f"{written}: not JSON Lines (one JSON object per line): {exc}") from None
    from dlops.data.tables import load_table
    from dlops.params import TableSource

    full = file.resolve()  # a relative --from is relative to the current directory, not to the file's folder
    return load_table(TableSource(source="table", path=str(full), **_table_format(file.name)), full.parent)


def _table_format(name: str) -> dict[str, Any]:
    """`format` and `csv_options` of a `table` source for a file name (a .tsv is a CSV split on tabs)."""
    if name.lower().endswith((".tsv", ".tab")):
        return {"format": "csv", "csv_options": {"sep": "\t"}}
    return {}


def _label_column(columns: list[str], written: str) -> str:
    named = [c for c in columns if c.lower() in LABEL_NAMES]
    if len(named) == 1:
        return named[0]
    which = f"several are named like one ({named})" if named else f"none is named {', '.join(LABEL_NAMES)}"
    raise AddTaskError(
        f"{written}: which column is the label? {which}; its columns are {columns}; pass --label"
    )


def _free_text(frame: Any, label: str) -> str | None:
    """The string column that reads like free text (long, mostly unique values), or None."""
    best, best_chars = None, 0.0
    for column in frame.columns:
        values = frame[column].dropna()
        if column == label or values.empty or not all(isinstance(v, str) for v in values.head(1000)):
            continue
        chars = float(values.str.len().mean())
        if (
            chars >= FREE_TEXT_CHARS
            and values.nunique() >= FREE_TEXT_UNIQUE * len(values)
            and chars > best_chars
        ):
            best, best_chars = str(column), chars
    return best


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _sensitive(frame: Any, candidates: list[str], choices: Choices, notes: list[str]) -> list[str]:
    if choices.sensitive is not None:
        notes.append(
            f"sensitive columns (given, measured for fairness): {', '.join(choices.sensitive) or 'none'}"
        )
        return list(choices.sensitive)
    found = []
    for column in candidates:
        if _key(column) not in SENSITIVE_NAMES or column in choices.ignore:
            continue
        if (groups := frame[column].nunique()) > MAX_GROUPS:
            notes.append(
                f"{column}: named like a protected attribute but has {groups} values: kept as a feature; "
                "add a column of its groups (e.g. age bands) and pass --sensitive to measure fairness by it"
            )
            continue
        found.append(column)
    what = ", ".join(found) if found else "none found by name (pass --sensitive COL,... to name them)"
    notes.append(f"sensitive columns (inferred, measured for fairness): {what}")
    return found


def _positive_label(labels: Any, notes: list[str]) -> Any:
    """For two classes, the rarer one (the class to detect, by convention); None for more."""
    counts = labels.dropna().value_counts()
    if len(counts) != 2:
        notes.append(f"classes: {len(counts)} ({', '.join(map(str, sorted(counts.index, key=str)[:10]))})")
        return None
    positive = counts.sort_values(kind="stable").index[0]
    share = counts[positive] / counts.sum()
    notes.append(f"positive_label: {positive!r}, the rarer class ({share:.0%} of rows); change it if needed")
    return positive.item() if hasattr(positive, "item") else positive


def _text_table(
    written: str, text: str, label: str, sensitive: list[str], positive: Any, test: str | None,
    notes: list[str], choices: Choices,
) -> Inferred:  # fmt: skip
    notes.insert(
        0, f"kind: text (text-table; text column {text}" + ("" if choices.text else ", inferred") + ")"
    )
    ingest = {"source": "text-table", "path": written, "text_column": text, "label_column": label}
    positive = None if positive is None else str(positive)  # a text table's labels are read as text
    columns = {"positive_label": positive, "sensitive": sensitive}
    return Inferred("text", {**ingest, **_test_key(test)}, columns, notes)


def _tabular(
    frame: Any, written: str, label: str, sensitive: list[str], positive: Any, test: str | None,
    notes: list[str], choices: Choices,
) -> Inferred:  # fmt: skip
    import pandas as pd

    from dlops.privacy.pii import detectors, found_in

    ignored, identifiers, numeric, categorical = list(choices.ignore), {}, [], []
    rules = detectors()
    for column in (c for c in map(str, frame.columns) if c not in (label, *sensitive, *choices.ignore)):
        series = frame[column]
        if _id_like(column, series):
            ignored.append(column)
            notes.append(f"{column}: ignored (an id: named like one, every value unique)")
        elif series.dtype == object and any(found_in(str(v), rules) for v in series.dropna().head(200)):
            identifiers[column] = "drop"
            notes.append(f"{column}: dropped at ingest (holds direct identifiers such as e-mails or phones)")
        elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric.append(column)
        elif pd.api.types.is_datetime64_any_dtype(series):
            ignored.append(column)
            notes.append(f"{column}: ignored (a date; derive numeric columns from it to use it)")
        else:
            categorical.append(column)
    if not numeric and not categorical:
        raise AddTaskError(
            f"{written}: no feature column is left besides the label, sensitive and ignored ones"
        )
    notes.insert(0, "kind: tabular (table source)")
    columns = {
        "target": label, "positive_label": positive, "sensitive": sensitive, "numeric": numeric,
        "categorical": categorical, "ignored": ignored,
    }  # fmt: skip
    if identifiers:
        columns["identifiers"] = identifiers
    ingest: dict[str, Any] = {"source": "table", "path": written, **_table_format(written)}
    if test is not None:
        ingest["test"] = {"path": test, **_table_format(test)}
    return Inferred("tabular", ingest, columns, notes)


def _id_like(column: str, series: Any) -> bool:
    import pandas as pd

    named = _key(column) == "id" or _key(column).endswith("_id")
    values = series.dropna()
    plain = pd.api.types.is_integer_dtype(series) or series.dtype == object
    return named and plain and len(values) == len(series) and values.is_unique


# ---------------------------------------------------------------------------------------------- paths
def written_path(file: Path, root: Path) -> str:
    """A path as params.yaml holds it: relative to the project when inside it, else absolute."""
    import os

    full = Path(os.path.abspath(file if file.is_absolute() else Path.cwd() / file))
    base = Path(os.path.abspath(root))
    return full.relative_to(base).as_posix() if full.is_relative_to(base) else full.as_posix()


def _written_test(test: str | None, root: Path) -> str | None:
    if test is None:
        return None
    if not Path(test).exists():
        raise AddTaskError(f"--test {test}: not found")
    return written_path(Path(test), root)


def _full(written: str, root: Path) -> Path:
    return Path(written) if Path(written).is_absolute() else root / written


def _test_key(test: str | None) -> dict[str, Any]:
    return {"test": test} if test is not None else {}
