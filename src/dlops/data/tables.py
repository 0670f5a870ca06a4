"""CSV/Parquet tables named in params: a local path or an http(s) URL pinned by sha256, read with the
checks every table-reading kind wants (format from the name, an empty file, a wrong delimiter, '?' as
a missing value). Tabular tasks and series tables read through `load_table`."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from dlops.data.inputs import DataSourceError, download, resolve_local
from dlops.params import TableSource

DOWNLOAD_DIR = Path(".dlops") / "downloads"


def load_table(src: TableSource, root: Path) -> pd.DataFrame:
    """Read a CSV/Parquet table from a local path (relative to `root`) or a sha256-pinned URL."""
    if src.url is not None:
        file = download(src.url, str(src.sha256), root / DOWNLOAD_DIR)  # config requires sha256 with url
        name, where = PurePosixPath(urlparse(src.url).path).name, src.url
    else:
        file = resolve_local(str(src.path), root)
        name, where = file.name, str(src.path)
    fmt = src.format if src.format != "auto" else _format_from_name(name, where)
    if file.stat().st_size == 0:
        raise DataSourceError(f"{where}: the file is empty (0 bytes)")
    _check_compression(file, name, fmt, src.csv_options, where)
    try:
        frame = _read_csv(file, src.csv_options, where) if fmt == "csv" else pd.read_parquet(file)
    except DataSourceError:
        raise
    except UnicodeDecodeError as exc:
        if "encoding" in src.csv_options or name.lower().endswith(COMPRESSED_SUFFIXES):
            raise DataSourceError(f"{where}: cannot read as {fmt}: {exc}") from exc
        raise _not_utf8(file, where) from None
    except pd.errors.ParserError as exc:
        if quote := re.search(r"EOF inside string starting at row (\d+)", str(exc)):
            line = int(quote.group(1)) + 1  # pandas counts rows from 0, the header included
            raise DataSourceError(
                f'{where}:{line}: a quote (") opened on this line is never closed, so the rest of the '
                "file would be one field; close or remove it"
            ) from None
        raise DataSourceError(f"{where}: cannot read as {fmt}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # pandas/pyarrow raise many types for a truncated or foreign file
        raise DataSourceError(f"{where}: cannot read as {fmt}: {type(exc).__name__}: {exc}") from exc
    if frame.empty:
        raise DataSourceError(f"{where}: the table is empty ({len(frame)} rows, {frame.shape[1]} columns)")
    if fmt == "csv":
        _check_delimiter(frame, src.csv_options, where)
    if missing := sorted(set(src.replace) - {str(c) for c in frame.columns}):
        raise DataSourceError(f"{where}: `replace` names column(s) {missing} the table lacks")
    return frame.replace(src.replace) if src.replace else frame


def _check_delimiter(frame: pd.DataFrame, options: dict[str, Any], where: str) -> None:
    """One column whose header holds another delimiter means the file was split on the wrong one."""
    if frame.shape[1] != 1 or "sep" in options or "delimiter" in options:
        return
    header = str(frame.columns[0])
    for sep in (";", "\t", "|"):
        if header.count(sep) >= 1:
            raise DataSourceError(
                f"{where}: read as one column {header[:80]!r}: the file looks delimited by {sep!r}, "
                f"not ','; set csv_options: {{sep: {sep!r}}} under tasks.<task>.ingest"
            )


def _format_from_name(name: str, where: str) -> str:
    lowered = name.lower()
    if lowered.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".data", ".txt")):
        return "csv"
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    raise DataSourceError(f"{where}: cannot tell the format from the name; set format: csv or parquet")


MAGIC = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"PAR1": "parquet"}
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar")


def _check_compression(file: Path, name: str, fmt: str, options: dict[str, Any], where: str) -> None:
    """A compressed (or Parquet, or Excel) file under a plain CSV name would be read as text and fail on
    its first byte, and a foreign text (see `_check_text`) on a later one: name what it really is."""
    if fmt != "csv" or "compression" in options or name.lower().endswith(COMPRESSED_SUFFIXES):
        return
    with file.open("rb") as handle:
        head = handle.read(512)
    if head.startswith(OLE2_MAGIC) or (head.startswith(b"PK\x03\x04") and _is_workbook(file)):
        raise DataSourceError(
            f"{where}: the file is an Excel workbook, not CSV text; save the sheet as CSV (UTF-8) and "
            "give that file"
        )
    for magic, container in MAGIC.items():
        if head.startswith(magic):
            fix = (
                "set format: parquet under tasks.<task>.ingest"
                if container == "parquet"
                else f"rename it to {name}.{'gz' if container == 'gzip' else container} or set csv_options: "
                f"{{compression: {container}}} under tasks.<task>.ingest"
            )
            raise DataSourceError(f"{where}: the file is {container} data, not plain CSV text; {fix}")
    if "encoding" not in options:
        _check_text(head, where)


OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an Excel 97-2003 .xls
HTML_PAGE = (
    "an HTML page, not CSV: the link was to a web page that shows the file; download the raw file "
    "(e.g. GitHub's Raw button)"
)
FOREIGN_TEXT = {
    b"<!doctype html": HTML_PAGE,
    b"<html": HTML_PAGE,
    b"version https://git-lfs.github.com/spec/": "a Git LFS pointer, not the data; run `git lfs pull`",
}


def _is_workbook(file: Path) -> bool:
    """An .xlsx is a zip holding xl/workbook.xml."""
    try:
        with zipfile.ZipFile(file) as archive:
            return any(n.startswith("xl/") for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _check_text(head: bytes, where: str) -> None:
    """A UTF-16 export, binary data, a web page or a Git LFS pointer in a CSV's place."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataSourceError(
            f"{where}: the file is UTF-16 text (it starts with a byte-order mark), not UTF-8; save it as "
            "UTF-8 or set csv_options: {encoding: utf-16} under tasks.<task>.ingest"
        )
    if b"\x00" in head:
        raise DataSourceError(
            f"{where}: the file holds binary data (NUL bytes among its first {len(head)} bytes), not CSV text"
        )
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    for prefix, what in FOREIGN_TEXT.items():
        if start.startswith(prefix):
            raise DataSourceError(f"{where}: the file is {what}")


def _not_utf8(file: Path, where: str) -> DataSourceError:
    """The first byte that is not UTF-8, by line and column (read_csv's position is within a buffer)."""
    data = file.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        return DataSourceError(
            f"{where}:{line}: byte {data[error.start]:#04x} at column {column} is not valid UTF-8; save the "
            "file as UTF-8 or name its encoding: csv_options: {encoding: latin-1} under tasks.<task>.ingest"
        )
    return DataSourceError(f"{where}: not valid UTF-8 text")


HEADER_ONLY = ("header", "names", "nrows", "dtype", "usecols", "index_col", "converters", "parse_dates")


def _check_header(file: Path, options: dict[str, Any], where: str) -> None:
    """A name given twice in the header (pandas would rename the second `age.1`): name it and where."""
    if "names" in options or ("header" in options and options["header"] != 0):
        return
    rest = {k: v for k, v in options.items() if k not in HEADER_ONLY}
    first = pd.read_csv(file, header=None, nrows=1, dtype=str, keep_default_na=False, **rest)
    names = [str(v).strip() for v in first.iloc[0]] if len(first) else []
    for name in dict.fromkeys(names):
        at = [i + 1 for i, n in enumerate(names) if n == name]
        if len(at) > 1:
            raise DataSourceError(
                f"{where}: column {name!r} appears {len(at)} times in the header (columns "
                f"{', '.join(map(str, at))}); rename the copies so each column has one name"
            )


def _read_csv(file: Path, options: dict[str, Any], where: str) -> pd.DataFrame:
    """read_csv, then strip whitespace around headers and string cells (census CSVs write ' Male')."""
    _check_header(file, options, where)
    frame = pd.read_csv(file, **options)
    frame.columns = [c.strip() if isinstance(c, str) else c for c in frame.columns]
    na_values = options.get("na_values")
    dtype = options.get("dtype")
    typed: dict[Any, Any] = dtype if isinstance(dtype, dict) else {}
    for column in frame.columns:
        series = frame[column]
        if series.dtype == object:
            series = series.map(lambda v: v.strip() if isinstance(v, str) else v)
        elif pd.api.types.is_string_dtype(series.dtype):
            series = series.str.strip()
        else:
            continue
        # " ?" only becomes "?" after stripping, so the user's na_values are applied once more here.
        missing = _na_for(na_values, column)
        if missing and series.isin(missing).any():
            series = series.mask(series.isin(missing))
            if column not in typed:  # the user's dtype wins
                series = _numeric_if_all_parse(series)
        frame[column] = series
    return frame


def _numeric_if_all_parse(series: pd.Series) -> pd.Series:
    """A column read as text only because of a ' ?' placeholder becomes numeric once that is NA."""
    numbers = pd.to_numeric(series, errors="coerce")
    return numbers if numbers.notna().sum() == series.notna().sum() else series


def _na_for(na_values: Any, column: str) -> list[str]:
    if na_values is None:
        return []
    if isinstance(na_values, dict):
        na_values = na_values.get(column, [])
    if isinstance(na_values, str):
        return [na_values]
    return [str(v) for v in na_values]
