"""Text sources of the `text` task: the synthetic reviews (`dlops.kinds.text.reviews`), a CSV/TSV/JSONL
table and a folder of .txt files with one subfolder per class (the IMDB layout).

Each becomes the raw text table: `text`, `label` (str), the configured group columns and `source`
(where the row came from). Every failure is a `TextDataError` naming the file (and the line, column or
key); bytes that are not UTF-8 are reported with their line number.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from dlops.data.inputs import project_path
from dlops.data.splitting import with_given_test
from dlops.errors import BadInput
from dlops.kinds.text.reviews import generate_reviews
from dlops.params import SyntheticReviewsSource, TextFolderSource, TextTableSource, TextTask


class TextDataError(BadInput, ValueError):
    """A text source cannot be loaded; the message names the file (and the line, column or key)."""


def load_texts(task_cfg: TextTask, root: Path) -> pd.DataFrame:
    """The raw text table: text, label (str), the configured group columns, source (and the split column
    when `preprocess.split.column` names one; a `test:` sub-source's rows follow, marked in `__split`)."""
    return with_given_test(task_cfg, lambda cfg: _load_one(cfg, root))


def _load_one(task_cfg: TextTask, root: Path) -> pd.DataFrame:
    src = task_cfg.ingest
    if isinstance(src, SyntheticReviewsSource):
        return generate_reviews(src)
    if isinstance(src, TextTableSource):
        split_column = task_cfg.preprocess.split.column
        return _table(src, [*task_cfg.columns.sensitive, *([split_column] if split_column else [])], root)
    if isinstance(src, TextFolderSource):
        return _folder(src, root)
    raise TextDataError(f"ingest.source: unknown text source {src!r}")


def _decode_utf8(data: bytes, where: str) -> str:
    """`data` as text; bytes that are not UTF-8 raise naming `where`, the line and the column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise TextDataError(
            f"{where}:{line}: byte {data[error.start]:#04x} at column {column} is not valid UTF-8"
        ) from None


def _table(src: TextTableSource, groups: list[str], root: Path) -> pd.DataFrame:
    path = _file(src.path, root)
    data = path.read_bytes()
    text = _decode_utf8(data, src.path).removeprefix("\ufeff")
    if not text.strip():
        raise TextDataError(f"{src.path}: file is empty")
    fmt = src.format if src.format != "auto" else _format_from_extension(src.path)
    wanted = {"text": src.text_column, "label": src.label_column, **{g: g for g in groups}}
    if fmt == "jsonl":
        columns, lines = _jsonl_rows(text, src.path, wanted)
    else:
        columns, lines = _delimited_rows(text, src.path, wanted, "\t" if fmt == "tsv" else ",")
    if not lines:
        raise TextDataError(f"{src.path}: no rows below the header")
    frame = pd.DataFrame(columns)
    frame["source"] = [f"{src.path}:{line}" for line in lines]
    return frame


def _format_from_extension(path: str) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes]
    for fmt, extensions in {"csv": {".csv"}, "tsv": {".tsv", ".tab"}, "jsonl": {".jsonl", ".ndjson"}}.items():
        if extensions & set(suffixes):
            return fmt
    raise TextDataError(
        f"{path}: cannot tell the format from the extension; set ingest.format (csv|tsv|jsonl)"
    )


def _delimited_rows(
    text: str, where: str, wanted: dict[str, str], delimiter: str
) -> tuple[dict[str, list[str]], list[int]]:
    """Columns named in `wanted` (output name -> file column) and the physical line each row starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
        positions = _header_positions(header, wanted, where)
        columns: dict[str, list[str]] = {name: [] for name in wanted}
        lines: list[int] = []
        start = reader.line_num + 1
        for row in reader:
            if row:
                if len(row) != len(header):
                    raise TextDataError(f"{where}:{start}: {len(row)} fields, the header has {len(header)}")
                for name, position in positions.items():
                    columns[name].append(row[position])
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as error:
        raise TextDataError(f"{where}:{reader.line_num}: {error}") from None
    return columns, lines


def _header_positions(header: list[str], wanted: dict[str, str], where: str) -> dict[str, int]:
    missing = [column for column in wanted.values() if column not in header]
    if missing:
        raise TextDataError(f"{where}: no column {missing[0]!r} (the header has {header})")
    return {name: header.index(column) for name, column in wanted.items()}


def _jsonl_rows(text: str, where: str, wanted: dict[str, str]) -> tuple[dict[str, list[str]], list[int]]:
    columns: dict[str, list[str]] = {name: [] for name in wanted}
    lines: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TextDataError(f"{where}:{number}: not JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise TextDataError(f"{where}:{number}: expected a JSON object, got {type(record).__name__}")
        for name, key in wanted.items():
            if key not in record:
                raise TextDataError(f"{where}:{number}: no key {key!r} (column {key!r} is missing)")
            value = record[key]
            if name == "text" and not isinstance(value, str | None):  # a label may be a number; a text not
                raise TextDataError(
                    f"{where}:{number}: key {key!r} holds a {type(value).__name__} ({str(value)[:40]}), "
                    "expected a string"
                )
            columns[name].append("" if value is None else str(value))
        lines.append(number)
    return columns, lines


def _folder(src: TextFolderSource, root: Path) -> pd.DataFrame:
    folder = _directory(src.path, root)
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if src.classes is not None:
        if missing := sorted(set(src.classes) - {d.name for d in class_dirs}):
            found = [d.name for d in class_dirs]
            raise TextDataError(f"{src.path}: ingest.classes {missing} have no subfolder; it has {found}")
        class_dirs = [d for d in class_dirs if d.name in src.classes]
    if not class_dirs:
        raise TextDataError(f"{src.path}: no class subfolders (expected one folder of .txt files per class)")
    texts, labels, sources = [], [], []
    for class_dir in class_dirs:
        files = sorted(f for f in class_dir.iterdir() if f.suffix == ".txt" and not f.name.startswith("."))
        if not files:
            raise TextDataError(f"{src.path}/{class_dir.name}: no .txt files")
        for file in files:
            relative = file.relative_to(folder).as_posix()
            texts.append(_decode_utf8(file.read_bytes(), f"{src.path}/{relative}").removeprefix("\ufeff"))
            labels.append(class_dir.name)
            sources.append(f"{src.path}/{relative}")  # the train and test folders name their own files
    return pd.DataFrame({"text": texts, "label": labels, "source": sources})


def _file(path: str, root: Path) -> Path:
    return project_path(path, root, "file", TextDataError)


def _directory(path: str, root: Path) -> Path:
    return project_path(path, root, "folder", TextDataError)
