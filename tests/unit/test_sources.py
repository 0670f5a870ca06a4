"""Raw table loading: local CSV/Parquet, pinned URLs, column checks and atomic writes."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dlops.data import inputs
from dlops.data.inputs import DataSourceError
from dlops.files import write_parquet
from dlops.kinds.tabular.sources import check_columns, load_raw, load_table
from dlops.params import ColumnRoles, SyntheticIncomeSource, TableSource, TabularTask

COLUMNS = ColumnRoles(target="income", sensitive=["sex"], numeric=["age"], categorical=["job"])
CSV = "age, job, sex, income, note\n39, Clerk, Male, <=50K, x\n50, ?, Female, >50K, y\n"


def table(**kwargs: Any) -> TableSource:
    return TableSource(source="table", **kwargs)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"age": [39, 50, 28], "job": ["Clerk", "Exec", None], "sex": ["Male", "Female", "Male"],
         "income": ["<=50K", ">50K", "<=50K"]}
    )  # fmt: skip


def test_csv_values_and_headers_are_stripped(tmp_path: Path) -> None:
    (tmp_path / "adult.csv").write_text(CSV)
    loaded = load_table(table(path="adult.csv"), tmp_path)
    assert list(loaded.columns) == ["age", "job", "sex", "income", "note"]
    assert list(loaded["sex"]) == ["Male", "Female"]
    assert list(loaded["job"]) == ["Clerk", "?"]  # "?" is a value unless na_values says otherwise
    assert loaded["age"].tolist() == [39, 50]


def test_csv_na_values_apply_after_stripping(tmp_path: Path) -> None:
    (tmp_path / "adult.csv").write_text(CSV.replace("50, ?", "?, ?"))
    loaded = load_table(table(path="adult.csv", csv_options={"na_values": ["?"]}), tmp_path)
    assert loaded["job"].isna().tolist() == [False, True]
    assert loaded["age"].dtype.kind == "f" and loaded["age"].isna().tolist() == [False, True]


def test_parquet_round_trip_and_format_override(tmp_path: Path) -> None:
    frame().to_parquet(tmp_path / "data.bin", index=False)
    loaded = load_table(table(path="data.bin", format="parquet"), tmp_path)
    pd.testing.assert_frame_equal(loaded, frame())
    with pytest.raises(DataSourceError, match="data.bin: cannot tell the format"):
        load_table(table(path="data.bin"), tmp_path)


def test_absolute_paths_are_accepted_but_relative_ones_may_not_escape_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    frame().to_parquet(tmp_path / "outside.parquet", index=False)
    assert len(load_table(table(path=str(tmp_path / "outside.parquet")), root)) == 3
    with pytest.raises(DataSourceError, match="escapes the project root"):
        load_table(table(path="../outside.parquet"), root)
    monkeypatch.chdir(root)  # a relative root must not let "sub/../../x" through either
    with pytest.raises(DataSourceError, match="escapes the project root"):
        load_table(table(path="sub/../../outside.parquet"), Path("."))
    with pytest.raises(DataSourceError, match="missing.csv: file not found"):
        load_table(table(path="missing.csv"), root)


def test_truncated_parquet_and_empty_table_name_the_file(tmp_path: Path) -> None:
    frame().to_parquet(tmp_path / "whole.parquet", index=False)
    data = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataSourceError, match="cut.parquet: cannot read as parquet"):
        load_table(table(path="cut.parquet"), tmp_path)
    (tmp_path / "empty.csv").write_text("age,job,sex,income\n")
    with pytest.raises(DataSourceError, match="empty.csv: the table is empty"):
        load_table(table(path="empty.csv"), tmp_path)


def test_missing_column_names_file_column_and_closest_match() -> None:
    roles = ColumnRoles(target="income", sensitive=["gender"], numeric=["age"], categorical=["job"])
    with pytest.raises(DataSourceError) as info:
        check_columns(frame().rename(columns={"sex": "gendr"}), roles, where="data/adult.csv")
    message = str(info.value)
    assert message.startswith("data/adult.csv:")
    assert "'gender' (sensitive)" in message and "'gendr'" in message


def test_ignored_columns_are_dropped_and_undeclared_ones_refused() -> None:
    roles = COLUMNS.model_copy(update={"ignored": ["note"]})
    checked = check_columns(frame().assign(note="n"), roles, where="t.csv")
    assert list(checked.columns) == ["age", "job", "sex", "income"]
    with pytest.raises(DataSourceError) as info:
        check_columns(frame().assign(note="n", extra=1, other=2), roles, where="t.csv")
    assert str(info.value).startswith("t.csv: column(s) ['extra', 'other'] not declared")
    assert "columns.ignored" in str(info.value)


def test_wrong_csv_delimiter_and_empty_file_are_named(tmp_path: Path) -> None:
    frame().to_csv(tmp_path / "t.csv", index=False, sep=";")
    task = tabular_task(table(path="t.csv"), COLUMNS)
    with pytest.raises(DataSourceError, match=r"t.csv: read as one column .* delimited by ';'"):
        load_raw(task, tmp_path)
    (tmp_path / "t.csv").write_bytes(b"")
    with pytest.raises(DataSourceError, match=r"t.csv: the file is empty \(0 bytes\)"):
        load_raw(task, tmp_path)


def _xlsx(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as book:
        book.writestr("xl/workbook.xml", "<workbook/>")


@pytest.mark.parametrize(
    ("content", "message"),
    [(CSV.replace("Clerk", "Caf\u00e9").encode("latin-1"), r"t\.csv:2: byte 0xe9 at column 8 is not valid"),
     (CSV.encode("utf-16"), r"t\.csv: the file is UTF-16 text .*encoding: utf-16"),
     (CSV.replace("50, ?", '"50, ?').encode(), r"t\.csv:3: a quote \(\"\) opened on this line is never"),
     (b"\x00\x01garbage", r"t\.csv: the file holds binary data"),
     (b"\n<!DOCTYPE html>\n<html>a, b</html>\n", r"t\.csv: the file is an HTML page"),
     (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n", r"LFS pointer.*git lfs pull"),
     (_xlsx, r"t\.csv: the file is an Excel workbook")],
    ids=["latin-1", "utf-16", "open-quote", "binary", "html", "lfs-pointer", "xlsx"],
)  # fmt: skip
def test_a_csv_that_is_not_utf8_csv_text_is_named_with_its_line(
    tmp_path: Path, content: Any, message: str
) -> None:
    if callable(content):
        content(tmp_path / "t.csv")
    else:
        (tmp_path / "t.csv").write_bytes(content)
    with pytest.raises(DataSourceError, match=message):
        load_table(table(path="t.csv"), tmp_path)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_the_encoding_the_message_suggests_reads_the_file(tmp_path: Path, encoding: str) -> None:
    (tmp_path / "t.csv").write_bytes(CSV.replace("Clerk", "Caf\u00e9").encode(encoding))
    read = load_table(table(path="t.csv", csv_options={"encoding": encoding}), tmp_path)
    assert read["job"].tolist() == ["Caf\u00e9", "?"]


def test_load_raw_dispatches_on_source(tmp_path: Path) -> None:
    frame().to_csv(tmp_path / "t.csv", index=False)
    task = tabular_task(table(path="t.csv"), COLUMNS)
    assert list(load_raw(task, tmp_path).columns) == ["age", "job", "sex", "income", "__record"]
    synthetic = SyntheticIncomeSource(source="synthetic-income", rows=200)
    roles = ColumnRoles(
        target="income", sensitive=["sex", "race"], numeric=["age"], categorical=["occupation"]
    )
    task = tabular_task(synthetic, roles)
    assert load_raw(task, tmp_path).shape == (200, 6)  # with __record


def tabular_task(ingest: object, columns: ColumnRoles) -> TabularTask:
    sections = {"validate": {"suite": "s.json"}, "preprocess": {}, "augment": {}}
    return TabularTask.model_validate({"kind": "tabular", "ingest": ingest, "columns": columns, **sections})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An http server on 127.0.0.1 serving tmp_path/www; yields (base URL, log of requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_url_is_downloaded_verified_and_cached(tmp_path: Path, served: tuple[str, list[str]]) -> None:
    base, requests = served
    root = tmp_path / "project"
    frame().to_csv(tmp_path / "www" / "adult.csv", index=False)
    digest = hashlib.sha256((tmp_path / "www" / "adult.csv").read_bytes()).hexdigest()
    src = table(url=f"{base}/adult.csv", sha256=digest)
    pd.testing.assert_frame_equal(load_table(src, root), frame())
    assert (root / ".dlops" / "downloads" / digest).is_file()
    load_table(src, root)
    assert requests == ["/adult.csv"]  # the second load came from the cache


def test_hash_mismatch_names_url_and_both_hashes_and_caches_nothing(
    tmp_path: Path, served: tuple[str, list[str]]
) -> None:
    base, _ = served
    root = tmp_path / "project"
    frame().to_csv(tmp_path / "www" / "adult.csv", index=False)
    actual = hashlib.sha256((tmp_path / "www" / "adult.csv").read_bytes()).hexdigest()
    url = f"{base}/adult.csv"
    with pytest.raises(DataSourceError) as info:
        load_table(table(url=url, sha256="0" * 64), root)
    assert url in str(info.value) and "0" * 64 in str(info.value) and actual in str(info.value)
    assert list((root / ".dlops" / "downloads").iterdir()) == []
    with pytest.raises(DataSourceError, match="download failed"):
        load_table(table(url=f"{base}/nope.csv", sha256="0" * 64), root)


def test_interrupted_download_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(url: str, out: Any) -> str:
        out.write(b"half a file")
        raise OSError("connection reset")

    monkeypatch.setattr(inputs, "_fetch", broken)
    with pytest.raises(DataSourceError, match="connection reset"):
        load_table(table(url="https://example.org/t.csv", sha256="a" * 64), tmp_path)
    assert list((tmp_path / ".dlops" / "downloads").iterdir()) == []


def test_write_parquet_atomic_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "raw" / "t.parquet"
    write_parquet(frame(), out)
    bad = frame().assign(age=[object(), object(), object()])  # pyarrow cannot write arbitrary objects
    with pytest.raises(Exception):  # noqa: B017 (whatever pyarrow raises, the old file must survive)
        write_parquet(bad, out)
    pd.testing.assert_frame_equal(pd.read_parquet(out), frame())
    assert [p.name for p in out.parent.iterdir()] == ["t.parquet"]
