"""The bad inputs of tests/integration/test_bad_inputs.py: the baseline's files and one break per case.

Each case changes the copied project (its data/input files and/or its params mapping) and says which
stage must stop it, with what exit code, and which names (file, column, line, key) the message must hold.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

Params = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    stage: str  # the stage that must exit non-zero
    names: tuple[str, ...]  # strings the message must contain
    apply: Callable[[Path, Params], None]
    exit_code: int = 65  # bad input (dlops.errors.EXIT_BAD_INPUT)
    env: dict[str, str] | None = field(default=None, hash=False)
    edit_text: Callable[[str], str] | None = None  # a change to params.yaml's text YAML cannot express

    def params_text(self, text: str) -> str:
        return self.edit_text(text) if self.edit_text else text


def write_inputs(folder: Path) -> None:
    """The baseline's real files: income.csv (the generator's table), digits.npz, reviews.jsonl."""
    from dlops.kinds.tabular.synthetic import generate_income
    from dlops.kinds.text.reviews import generate_reviews
    from dlops.params import SyntheticIncomeSource, SyntheticReviewsSource

    folder.mkdir(parents=True)
    income = generate_income(SyntheticIncomeSource(source="synthetic-income", rows=3000, seed=7))
    income.to_csv(folder / "income.csv", index=False)
    x, y = _digits()
    np.savez(folder / "digits.npz", x=x, y=y)
    reviews = generate_reviews(SyntheticReviewsSource(source="synthetic-reviews", rows=1500, seed=11))
    with (folder / "reviews.jsonl").open("w", encoding="utf-8") as out:
        for row in reviews[["text", "label", "group"]].to_dict("records"):
            out.write(json.dumps(row) + "\n")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images * 255 / 16).round().astype(np.uint8), digits.target.astype(np.int64)


# ------------------------------------------------------------------------------------------------ tables
def _income(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data" / "input" / "income.csv")


def _save_income(root: Path, frame: pd.DataFrame, **options: Any) -> None:
    frame.to_csv(root / "data" / "input" / "income.csv", index=False, **options)


def _set(frame: pd.DataFrame, column: str, rows: slice, value: Any) -> pd.DataFrame:
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[rows], column] = value
    return frame


def missing_column(root: Path, params: Params) -> None:
    _save_income(root, _income(root).drop(columns=["hours_per_week"]))


def extra_column(root: Path, params: Params) -> None:
    frame = _income(root)
    frame["favourite_colour"] = "teal"
    _save_income(root, frame)


def wrong_dtype(root: Path, params: Params) -> None:
    _save_income(root, _set(_income(root), "age", slice(10, 400), "forty"))


def all_null_column(root: Path, params: Params) -> None:
    _save_income(root, _set(_income(root), "capital_gain", slice(None), None))


def nan_and_infinity(root: Path, params: Params) -> None:
    _save_income(root, _set(_income(root), "neighborhood_income", slice(0, 300), float("inf")))


def impossible_values(root: Path, params: Params) -> None:
    _save_income(root, _set(_income(root), "age", slice(0, 300), -5))


def unseen_category(root: Path, params: Params) -> None:
    _save_income(root, _set(_income(root), "occupation", slice(0, 300), "astronaut"))


def label_outside_set(root: Path, params: Params) -> None:
    _save_income(root, _set(_income(root), "income", slice(0, 300), "maybe"))


def single_class(root: Path, params: Params) -> None:
    frame = _income(root)
    frame["income"] = "<=50K"
    _save_income(root, frame)


def empty_file(root: Path, params: Params) -> None:
    (root / "data" / "input" / "income.csv").write_bytes(b"")


def header_only(root: Path, params: Params) -> None:
    _save_income(root, _income(root).head(0))


def truncated_parquet(root: Path, params: Params) -> None:
    buffer = io.BytesIO()
    _income(root).to_parquet(buffer, index=False)
    (root / "data" / "input" / "income.parquet").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    params["tasks"]["tabular"]["ingest"]["path"] = "data/input/income.parquet"


def thousands_separators(root: Path, params: Params) -> None:
    frame = _income(root)
    frame["neighborhood_income"] = [f"{v:,.0f}" for v in frame["neighborhood_income"]]  # "55,123"
    _save_income(root, frame)


def list_column(root: Path, params: Params) -> None:
    frame = _income(root)
    frame["occupation"] = [[v] for v in frame["occupation"]]  # a Parquet list column
    frame.to_parquet(root / "data" / "input" / "income.parquet", index=False)
    params["tasks"]["tabular"]["ingest"]["path"] = "data/input/income.parquet"


def wrong_delimiter(root: Path, params: Params) -> None:
    _save_income(root, _income(root), sep=";")


def duplicated_header(root: Path, params: Params) -> None:
    frame = _income(root)
    _save_income(root, frame.set_axis([*frame.columns[:-1], "age"], axis=1))  # the last column renamed


def gzip_named_csv(root: Path, params: Params) -> None:
    path = root / "data" / "input" / "income.csv"
    path.write_bytes(gzip.compress(path.read_bytes()))


def folder_as_path(root: Path, params: Params) -> None:
    (root / "data" / "input" / "tables").mkdir()
    params["tasks"]["tabular"]["ingest"]["path"] = "data/input/tables"


def duplicates_across_splits(root: Path, params: Params) -> None:
    frame = _income(root).dropna()
    _save_income(root, pd.concat([frame, frame.sample(frac=0.3, random_state=0)], ignore_index=True))


def _income_bytes(root: Path) -> list[bytes]:
    return (root / "data" / "input" / "income.csv").read_bytes().splitlines(keepends=True)


def _save_income_bytes(root: Path, lines: list[bytes]) -> None:
    (root / "data" / "input" / "income.csv").write_bytes(b"".join(lines))


def latin1_encoded(root: Path, params: Params) -> None:
    """Saved by a spreadsheet as Latin-1: one occupation on line 43 spelled 'Caf\xe9'."""
    frame = _set(_income(root), "occupation", slice(41, 42), "Caf\u00e9")
    _save_income(root, frame, encoding="latin-1")


def utf16_encoded(root: Path, params: Params) -> None:
    _save_income(root, _income(root), encoding="utf-16")


def ragged_row(root: Path, params: Params) -> None:
    lines = _income_bytes(root)
    lines[100] = lines[100].rstrip(b"\r\n") + b",extra\n"  # line 101
    _save_income_bytes(root, lines)


def unterminated_quote(root: Path, params: Params) -> None:
    lines = _income_bytes(root)
    lines[60] = b'"' + lines[60]  # line 61 opens a quote that nothing closes
    _save_income_bytes(root, lines)


def null_labels(root: Path, params: Params) -> None:
    _save_income(root, _set(_income(root), "income", slice(0, 300), None))


def label_column_missing(root: Path, params: Params) -> None:
    _save_income(root, _income(root).drop(columns=["income"]))


def sensitive_column_missing(root: Path, params: Params) -> None:
    _save_income(root, _income(root).drop(columns=["race"]))


def column_case(root: Path, params: Params) -> None:
    _save_income(root, _income(root).rename(columns={"age": "Age"}))


def header_repeated(root: Path, params: Params) -> None:
    """Two exports joined with `cat`: the second file's header is a data row on line 1502."""
    lines = _income_bytes(root)
    _save_income_bytes(root, [*lines[:1501], lines[0], *lines[1501:]])


def binary_garbage(root: Path, params: Params) -> None:
    (root / "data" / "input" / "income.csv").write_bytes(np.random.default_rng(0).bytes(4096))


def parquet_named_csv(root: Path, params: Params) -> None:
    _income(root).to_parquet(root / "data" / "input" / "income.csv", index=False)


def xlsx_named_csv(root: Path, params: Params) -> None:
    """An Excel workbook saved as income.csv: a zip holding [Content_Types].xml and xl/."""
    import zipfile

    with zipfile.ZipFile(root / "data" / "input" / "income.csv", "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")


def html_named_csv(root: Path, params: Params) -> None:
    """The web page around the file (a 'blob' link), not the raw file, saved as income.csv."""
    page = '<!DOCTYPE html>\n<html lang="en">\n<head><title>income.csv</title></head>\n<body>a, b</body>\n'
    (root / "data" / "input" / "income.csv").write_text(page + "</html>\n")


def lfs_pointer(root: Path, params: Params) -> None:
    """A clone without `git lfs pull`: the file is Git LFS's three-line pointer."""
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{'ab' * 32}\nsize 181818\n"
    (root / "data" / "input" / "income.csv").write_text(pointer)


def one_column(root: Path, params: Params) -> None:
    _save_income(root, _income(root)[["age"]])


def huge_value(root: Path, params: Params) -> None:
    _save_income(root, _set(_income(root), "age", slice(0, 300), 1e308))


def five_rows(root: Path, params: Params) -> None:
    _save_income(root, _income(root).head(5))


def class_of_one(root: Path, params: Params) -> None:
    frame = _income(root)
    frame["income"] = "<=50K"
    frame.loc[0, "income"] = ">50K"
    _save_income(root, frame)


def trailing_dot_labels(root: Path, params: Params) -> None:
    """The census test file's spelling, '>50K.' and '<=50K.', in a third of the rows."""
    frame = _income(root)
    rows = frame.index[:1000]
    frame.loc[rows, "income"] = frame.loc[rows, "income"] + "."
    _save_income(root, frame)


def question_marks(root: Path, params: Params) -> None:
    """The census files' ' ?' for a missing value, in a numeric column (no na_values given)."""
    _save_income(root, _set(_income(root), "hours_per_week", slice(0, 200), " ?"))


# ------------------------------------------------------------------------------------------------ images
def _npz(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(root / "data" / "input" / "digits.npz", x=x, y=y)


def images_wrong_shape(root: Path, params: Params) -> None:
    x, y = _digits()
    _npz(root, x.reshape(len(x), -1), y)  # (N, 64): flattened, not (N, H, W)


def images_rgb_for_gray(root: Path, params: Params) -> None:
    x, y = _digits()
    rgb = np.repeat(x[..., None], 3, axis=3)
    rgb[:200, ..., 0] = 255 - rgb[:200, ..., 0]  # a colour cast on some: really RGB
    _npz(root, rgb, y)


def images_label_outside_set(root: Path, params: Params) -> None:
    x, y = _digits()
    y[:5] = 12  # labels 11 missing: not 0..K-1
    _npz(root, x, y)


def corrupt_png(root: Path, params: Params) -> None:
    from PIL import Image

    x, y = _digits()
    folder = root / "data" / "input" / "digits"
    for i in range(len(x)):
        target = folder / str(y[i]) / f"{i:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i], mode="L").save(target)
    broken = folder / str(y[7]) / "0007.png"
    broken.write_bytes(broken.read_bytes()[:20] + b"\x00garbage" * 8)
    params["tasks"]["images"]["ingest"] = {"source": "image-folder", "path": "data/input/digits", "size": 8}


def truncated_idx(root: Path, params: Params) -> None:
    x, y = _digits()
    images = np.array([0x803, len(x), 8, 8], dtype=">u4").tobytes() + x.tobytes()
    labels = np.array([0x801, len(y)], dtype=">u4").tobytes() + y.astype(np.uint8).tobytes()
    folder = root / "data" / "input"
    (folder / "images.idx3-ubyte.gz").write_bytes(gzip.compress(images)[:-100])
    (folder / "labels.idx1-ubyte").write_bytes(labels)
    params["tasks"]["images"]["ingest"] = {
        "source": "idx",
        "images": "data/input/images.idx3-ubyte.gz",
        "labels": "data/input/labels.idx1-ubyte",
        "size": 8,
    }


def npz_missing_y(root: Path, params: Params) -> None:
    x, y = _digits()
    np.savez(root / "data" / "input" / "digits.npz", x=x, labels=y)


def npz_length_mismatch(root: Path, params: Params) -> None:
    x, y = _digits()
    _npz(root, x, y[:-97])


def npz_object_array(root: Path, params: Params) -> None:
    x, y = _digits()
    ragged = np.empty(len(x), dtype=object)
    ragged[:] = list(x)
    np.savez(root / "data" / "input" / "digits.npz", x=ragged, y=y)


def npz_nan_pixels(root: Path, params: Params) -> None:
    x, y = _digits()
    floats = x.astype(np.float32) / 255
    floats[3, 2, 2] = np.nan
    _npz(root, floats, y)


def text_named_npz(root: Path, params: Params) -> None:
    (root / "data" / "input" / "digits.npz").write_text("x,y\n0,1\n")


def npy_named_npz(root: Path, params: Params) -> None:
    x, _ = _digits()
    with (root / "data" / "input" / "digits.npz").open("wb") as handle:
        np.save(handle, x)


def npz_single_class(root: Path, params: Params) -> None:
    x, y = _digits()
    _npz(root, x, np.zeros_like(y))


def _idx_pair(root: Path, params: Params, images: bytes, labels: bytes) -> None:
    folder = root / "data" / "input"
    (folder / "images.idx3-ubyte").write_bytes(images)
    (folder / "labels.idx1-ubyte").write_bytes(labels)
    params["tasks"]["images"]["ingest"] = {
        "source": "idx", "images": "data/input/images.idx3-ubyte", "labels": "data/input/labels.idx1-ubyte",
        "size": 8,
    }  # fmt: skip


def _idx_images(x: np.ndarray) -> bytes:
    return np.array([0x803, len(x), 8, 8], dtype=">u4").tobytes() + x.tobytes()


def _idx_labels(y: np.ndarray) -> bytes:
    return np.array([0x801, len(y)], dtype=">u4").tobytes() + y.astype(np.uint8).tobytes()


def idx_swapped(root: Path, params: Params) -> None:
    """images: and labels: given the other way round."""
    x, y = _digits()
    _idx_pair(root, params, _idx_labels(y), _idx_images(x))


def idx_count_mismatch(root: Path, params: Params) -> None:
    x, y = _digits()
    _idx_pair(root, params, _idx_images(x), _idx_labels(y[:1000]))


def _image_folder(root: Path, params: Params, classes: list[int]) -> None:
    from PIL import Image

    x, y = _digits()
    folder = root / "data" / "input" / "digits"
    folder.mkdir()
    for i in np.flatnonzero(np.isin(y, classes)):
        target = folder / str(y[i]) / f"{i:04d}.png"
        target.parent.mkdir(exist_ok=True)
        Image.fromarray(x[i], mode="L").save(target)
    params["tasks"]["images"]["ingest"] = {"source": "image-folder", "path": "data/input/digits", "size": 8}


def folder_single_class(root: Path, params: Params) -> None:
    _image_folder(root, params, [3])


def folder_empty(root: Path, params: Params) -> None:
    _image_folder(root, params, [])


# -------------------------------------------------------------------------------------------------- text
def _reviews(root: Path) -> list[bytes]:
    return (root / "data" / "input" / "reviews.jsonl").read_bytes().splitlines(keepends=True)


def _save_reviews(root: Path, lines: list[bytes]) -> None:
    (root / "data" / "input" / "reviews.jsonl").write_bytes(b"".join(lines))


def _with_text(line: bytes, text: str) -> bytes:
    record = json.loads(line)
    record["text"] = text
    return json.dumps(record).encode() + b"\n"


def invalid_utf8(root: Path, params: Params) -> None:
    lines = _reviews(root)
    lines[41] = lines[41].replace(b"the", b"th\xff", 1)
    _save_reviews(root, lines)


def empty_texts(root: Path, params: Params) -> None:
    lines = _reviews(root)
    for i in range(100, 130):
        lines[i] = _with_text(lines[i], "   ")
    _save_reviews(root, lines)


def ten_megabyte_line(root: Path, params: Params) -> None:
    lines = _reviews(root)
    lines[99] = _with_text(lines[99], "great " * (10 * 1024 * 1024 // 6))
    _save_reviews(root, lines)


def text_label_outside_set(root: Path, params: Params) -> None:
    lines = _reviews(root)
    for i in range(0, 200):
        record = json.loads(lines[i])
        record["label"] = "meh"
        lines[i] = json.dumps(record).encode() + b"\n"
    _save_reviews(root, lines)


def _set_line(root: Path, index: int, change: Callable[[dict[str, Any]], Any]) -> None:
    lines = _reviews(root)
    record = json.loads(lines[index])
    change(record)
    lines[index] = json.dumps(record).encode() + b"\n"
    _save_reviews(root, lines)


def malformed_json_line(root: Path, params: Params) -> None:
    lines = _reviews(root)
    lines[56] = lines[56][: len(lines[56]) // 2] + b"\n"  # line 57 cut in the middle
    _save_reviews(root, lines)


def text_key_missing(root: Path, params: Params) -> None:
    _set_line(root, 200, lambda record: record.pop("text"))  # line 201


def text_is_number(root: Path, params: Params) -> None:
    _set_line(root, 300, lambda record: record.update(text=4.5))  # line 301


def text_is_null(root: Path, params: Params) -> None:
    _set_line(root, 310, lambda record: record.update(text=None))  # line 311


def one_label(root: Path, params: Params) -> None:
    lines = [json.dumps({**json.loads(line), "label": "pos"}).encode() + b"\n" for line in _reviews(root)]
    _save_reviews(root, lines)


def empty_jsonl(root: Path, params: Params) -> None:
    _save_reviews(root, [])


def json_array_file(root: Path, params: Params) -> None:
    """A JSON export (one array) where JSON Lines is expected."""
    records = [json.loads(line) for line in _reviews(root)]
    (root / "data" / "input" / "reviews.jsonl").write_text(json.dumps(records))


def _reviews_csv(root: Path, params: Params, frame: pd.DataFrame, **options: Any) -> None:
    frame.to_csv(root / "data" / "input" / "reviews.csv", index=False, **options)
    params["tasks"]["text"]["ingest"]["path"] = "data/input/reviews.csv"


def csv_label_missing(root: Path, params: Params) -> None:
    frame = pd.read_json(root / "data" / "input" / "reviews.jsonl", lines=True)
    _reviews_csv(root, params, frame.rename(columns={"label": "sentiment"}))


def csv_unquoted_commas(root: Path, params: Params) -> None:
    """Written by joining fields with ',': line 2's text holds a comma and splits into too many fields."""
    frame = pd.read_json(root / "data" / "input" / "reviews.jsonl", lines=True)
    rows = [",".join(map(str, row)) for row in frame[["text", "label", "group"]].itertuples(index=False)]
    (root / "data" / "input" / "reviews.csv").write_text("text,label,group\n" + "\n".join(rows) + "\n")
    params["tasks"]["text"]["ingest"]["path"] = "data/input/reviews.csv"


# ------------------------------------------------------------------------------------------------ params
def params_typo(root: Path, params: Params) -> None:
    params["tasks"]["tabular"]["preprocess"]["scalling"] = params["tasks"]["tabular"]["preprocess"].pop(
        "scaling"
    )


def params_wrong_type(root: Path, params: Params) -> None:
    params["models"]["tabular-mlp"]["train"]["epochs"] = "ten"


def params_unknown_family(root: Path, params: Params) -> None:
    params["models"]["tabular-mlp"]["family"] = "resnet"


def params_gate_out_of_range(root: Path, params: Params) -> None:
    params["models"]["tabular-mlp"]["gates"]["max_demographic_parity_difference"] = 1.5


def params_split_fractions(root: Path, params: Params) -> None:
    params["tasks"]["tabular"]["preprocess"]["split"].update(train=0.8, val=0.15, test=0.15)


def params_path_traversal(root: Path, params: Params) -> None:
    params["tasks"]["tabular"]["validate"]["suite"] = "../../outside.json"


def params_url_without_pin(root: Path, params: Params) -> None:
    params["tasks"]["tabular"]["ingest"] = {"source": "table", "url": "https://example.com/income.csv"}


def duplicate_key(text: str) -> str:
    """`epochs` given twice under models.tabular-mlp.train (YAML would keep the last)."""
    head, tail = text.split("  tabular-mlp:\n", 1)
    train = tail.index("    train:\n") + len("    train:\n")
    return head + "  tabular-mlp:\n" + tail[:train] + "      epochs: 2\n      epochs: 900\n" + tail[train:]


def not_yaml(text: str) -> str:
    return text + "tasks: [unclosed\n"


def _train(params: Params, **values: Any) -> None:
    params["models"]["tabular-mlp"]["train"].update(values)


def negative_lr(root: Path, params: Params) -> None:
    _train(params, lr=-0.001)


def batch_size_zero(root: Path, params: Params) -> None:
    _train(params, batch_size=0)


def epochs_zero(root: Path, params: Params) -> None:
    _train(params, epochs=0)


def seed_string(root: Path, params: Params) -> None:
    _train(params, seed="forty-two")


def model_unknown_task(root: Path, params: Params) -> None:
    params["models"]["tabular-mlp"]["task"] = "tabluar"


def column_two_roles(root: Path, params: Params) -> None:
    params["tasks"]["tabular"]["columns"]["categorical"].append("age")


def positive_label_absent(root: Path, params: Params) -> None:
    params["tasks"]["tabular"]["columns"]["positive_label"] = ">50k"


def csv_option_typo(root: Path, params: Params) -> None:
    params["tasks"]["tabular"]["ingest"]["csv_options"] = {"seperator": ","}


def unknown_primary_metric(root: Path, params: Params) -> None:
    params["models"]["tabular-mlp"]["gates"]["primary_metric"] = "balanced_acuracy"


def split_column_missing(root: Path, params: Params) -> None:
    params["tasks"]["tabular"]["preprocess"]["split"]["column"] = "fold"


def split_column_values(root: Path, params: Params) -> None:
    frame = _income(root)
    frame["fold"] = np.resize(np.array(["1", "2", "3", "4", "5"]), len(frame))  # k-fold ids, not splits
    _save_income(root, frame)
    params["tasks"]["tabular"]["preprocess"]["split"]["column"] = "fold"


def test_file_missing(root: Path, params: Params) -> None:
    params["tasks"]["tabular"]["ingest"]["test"] = {"path": "data/input/income.test"}


def python_tag(text: str) -> str:
    """A tag only an unsafe loader would run: PyYAML's yaml.load(..., Loader=Loader) would call it."""
    return text + "exploit: !!python/object/apply:os.system ['echo pwned']\n"


def tab_indent(text: str) -> str:
    """A tab where YAML wants spaces (an editor's tab key in models.tabular-mlp.train)."""
    return text.replace("      epochs:", "\tepochs:", 1)


# ------------------------------------------------------------------------------------------- environment
def nothing(root: Path, params: Params) -> None:
    """The inputs stay good: the environment is what is broken."""


def output_blocked(root: Path, params: Params) -> None:
    """data/processed/tabular, the preprocess stage's output folder, is a file: nothing can be written."""
    target = root / "data" / "processed" / "tabular"
    shutil.rmtree(target)
    target.write_text("not a folder\n")


def output_read_only(root: Path, params: Params) -> None:
    """data/processed/tabular is read-only: mode 0555, and for root (whom modes do not stop) immutable."""
    target = root / "data" / "processed" / "tabular"
    target.chmod(0o555)
    if os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode:
        pytest.skip("running as root where chattr +i is unavailable: no way to make a folder read-only")


def make_writable_again(root: Path) -> None:
    """Undo `output_read_only`, so the temporary project can be deleted."""
    target = root / "data" / "processed" / "tabular"
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(target)], capture_output=True)
    if target.is_dir():
        target.chmod(0o755)


UNREACHABLE = {
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}

INCOME = "data/input/income.csv"
NPZ = "data/input/digits.npz"
IDX = "data/input/images.idx3-ubyte"
GATE = "max_demographic_parity_difference"
CASES = [
    Case("table-missing-column", "tabular", "ingest", (INCOME, "hours_per_week"), missing_column),
    Case("table-extra-column", "tabular", "ingest", (INCOME, "favourite_colour", "ignored"), extra_column),
    Case("table-wrong-dtype", "tabular", "validate", ("age", "forty"), wrong_dtype),
    Case("table-all-null-column", "tabular", "validate", ("capital_gain",), all_null_column),
    Case("table-infinity", "tabular", "validate", ("neighborhood_income", "inf"), nan_and_infinity),
    Case("table-impossible-values", "tabular", "validate", ("age",), impossible_values),
    Case("table-unseen-category", "tabular", "validate", ("occupation", "astronaut"), unseen_category),
    Case("table-label-outside-set", "tabular", "validate", ("income", "maybe"), label_outside_set),
    Case("table-single-class", "tabular", "validate", ("income",), single_class),
    Case("table-empty-file", "tabular", "ingest", (INCOME, "empty"), empty_file),
    Case("table-header-only", "tabular", "ingest", (INCOME, "empty"), header_only),
    Case("table-truncated-parquet", "tabular", "ingest", ("data/input/income.parquet",), truncated_parquet),
    Case("table-wrong-delimiter", "tabular", "ingest", (INCOME, "';'"), wrong_delimiter),
    Case("table-duplicated-header", "tabular", "ingest", (INCOME, "'age' appears 2"), duplicated_header),
    Case("table-gzip-named-csv", "tabular", "ingest", (INCOME, "gzip", "compression"), gzip_named_csv),
    Case("table-path-is-a-folder", "tabular", "ingest", ("data/input/tables: a folder",), folder_as_path),
    Case("table-thousands-separators", "tabular", "validate", ("neighborhood_income", "holds str values"),
         thousands_separators),
    Case("table-list-column", "tabular", "validate", ("occupation", "holds list values"), list_column),
    Case("split-duplicates-leak", "tabular", "validate", ("duplicate",), duplicates_across_splits),
    Case("images-wrong-shape", "images", "ingest", (NPZ, "(1797, 64)"), images_wrong_shape),
    Case("images-rgb-for-gray", "images", "validate", ("channels", "digits.npz["), images_rgb_for_gray),
    Case("images-label-outside-set", "images", "ingest", (NPZ, "12"), images_label_outside_set),
    Case("images-corrupt-png", "images", "validate", ("readable", "0007.png"), corrupt_png),
    Case("images-truncated-idx", "images", "ingest", ("data/input/images.idx3-ubyte.gz",), truncated_idx),
    Case("text-invalid-utf8", "text", "ingest", ("data/input/reviews.jsonl:42", "UTF-8"), invalid_utf8),
    Case("text-empty-texts", "text", "validate", ("text", "reviews.jsonl:101"), empty_texts),
    Case("text-ten-megabyte-line", "text", "validate", ("text", "reviews.jsonl:100"), ten_megabyte_line),
    Case("text-label-outside-set", "text", "validate", ("label", "meh"), text_label_outside_set),
    Case("params-typo", "tabular", "ingest", ("tasks.tabular.preprocess.scalling", "scaling"), params_typo),
    Case("params-wrong-type", "tabular", "ingest", ("models.tabular-mlp.train.epochs",), params_wrong_type),
    Case("params-unknown-family", "tabular", "ingest", ("models.tabular-mlp.family", "resnet"),
         params_unknown_family),
    Case("params-gate-out-of-range", "tabular", "ingest", (GATE,), params_gate_out_of_range),
    Case("params-split-fractions", "tabular", "ingest", ("tasks.tabular.preprocess.split",),
         params_split_fractions),
    Case("params-path-traversal", "tabular", "ingest", ("tasks.tabular.validate.suite",),
         params_path_traversal),
    Case("params-url-without-sha256", "tabular", "ingest", ("tasks.tabular.ingest", "sha256"),
         params_url_without_pin),
    Case("params-duplicate-key", "tabular", "ingest", ("duplicate key 'epochs'", "first given on line"),
         nothing, edit_text=duplicate_key),
    Case("params-not-yaml", "tabular", "ingest", ("params.yaml: not valid YAML",), nothing,
         edit_text=not_yaml),
    Case("env-tracking-uri-garbage", "tabular", "train", ("MLFLOW_TRACKING_URI='garbage'", "plain path"),
         nothing, 65, {"MLFLOW_TRACKING_URI": "garbage"}),
    Case("env-tracking-unreachable", "tabular", "train", ("127.0.0.1:9",), nothing, 75, UNREACHABLE),
    Case("env-output-is-a-file", "tabular", "preprocess",
         ("data/processed/tabular: output folder is a file",), output_blocked, 1),
    Case("env-output-read-only", "tabular", "preprocess",
         ("data/processed/tabular: output folder is not writable",), output_read_only, 1),
    Case("table-latin1", "tabular", "ingest", (INCOME + ":43", "UTF-8", "encoding"), latin1_encoded),
    Case("table-utf16", "tabular", "ingest", (INCOME, "UTF-16", "encoding"), utf16_encoded),
    Case("table-ragged-row", "tabular", "ingest", (INCOME, "line 101"), ragged_row),
    Case("table-unterminated-quote", "tabular", "ingest", (INCOME + ":61", "quote"), unterminated_quote),
    Case("table-null-labels", "tabular", "validate", ("income",), null_labels),
    Case("table-label-column-missing", "tabular", "ingest", (INCOME, "'income' (target)"),
         label_column_missing),
    Case("table-sensitive-column-missing", "tabular", "ingest", (INCOME, "'race' (sensitive)"),
         sensitive_column_missing),
    Case("table-column-case", "tabular", "ingest", (INCOME, "'age'", "closest existing column: 'Age'"),
         column_case),
    Case("table-header-repeated", "tabular", "validate", ("age", "'age'"), header_repeated),
    Case("table-binary-garbage", "tabular", "ingest", (INCOME, "binary data"), binary_garbage),
    Case("table-parquet-named-csv", "tabular", "ingest", (INCOME, "parquet data", "format: parquet"),
         parquet_named_csv),
    Case("table-xlsx-named-csv", "tabular", "ingest", (INCOME, "Excel"), xlsx_named_csv),
    Case("table-html-named-csv", "tabular", "ingest", (INCOME, "HTML"), html_named_csv),
    Case("table-lfs-pointer", "tabular", "ingest", (INCOME, "Git LFS", "git lfs pull"), lfs_pointer),
    Case("table-one-column", "tabular", "ingest", (INCOME, "'income' (target)"), one_column),
    Case("table-huge-value", "tabular", "validate", ("age",), huge_value),
    Case("table-five-rows", "tabular", "validate", ("row_count", "observed 5"), five_rows),
    Case("table-class-of-one", "tabular", "validate", ("income",), class_of_one),
    Case("table-trailing-dot-labels", "tabular", "validate", ("income", ">50K."), trailing_dot_labels),
    Case("table-question-marks", "tabular", "validate", ("hours_per_week", "?"), question_marks),
    Case("images-npz-missing-y", "images", "ingest", (NPZ, "'y'", "y_key", "'labels'"), npz_missing_y),
    Case("images-length-mismatch", "images", "ingest", (NPZ, "(1700,)", "(1797,)"), npz_length_mismatch),
    Case("images-object-array", "images", "ingest", (NPZ, "'x'", "allow_pickle"), npz_object_array),
    Case("images-nan-pixels", "images", "ingest", (NPZ, "NaN"), npz_nan_pixels),
    Case("images-text-named-npz", "images", "ingest", (NPZ, "not an .npz"), text_named_npz),
    Case("images-npy-named-npz", "images", "ingest", (NPZ, "single .npy array"), npy_named_npz),
    Case("images-single-class", "images", "validate", ("label",), npz_single_class),
    Case("images-idx-swapped", "images", "ingest", (IDX, "magic number 0x00000801"), idx_swapped),
    Case("images-idx-count-mismatch", "images", "ingest", ("1797 images", "1000 labels"),
         idx_count_mismatch),
    Case("images-folder-single-class", "images", "validate", ("label",), folder_single_class),
    Case("images-folder-empty", "images", "ingest", ("data/input/digits", "no class subfolders"),
         folder_empty),
    Case("text-malformed-json", "text", "ingest", ("data/input/reviews.jsonl:57", "not JSON"),
         malformed_json_line),
    Case("text-key-missing", "text", "ingest", ("data/input/reviews.jsonl:201", "'text'"), text_key_missing),
    Case("text-is-number", "text", "ingest", ("data/input/reviews.jsonl:301", "'text'", "float"),
         text_is_number),
    Case("text-is-null", "text", "validate", ("text", "reviews.jsonl:311"), text_is_null),
    Case("text-one-label", "text", "validate", ("label",), one_label),
    Case("text-empty-file", "text", "ingest", ("data/input/reviews.jsonl", "empty"), empty_jsonl),
    Case("text-json-array", "text", "ingest", ("data/input/reviews.jsonl:1", "list"), json_array_file),
    Case("text-csv-label-missing", "text", "ingest", ("data/input/reviews.csv", "'label'"),
         csv_label_missing),
    Case("text-csv-unquoted-commas", "text", "ingest", ("data/input/reviews.csv:2", "4 fields"),
         csv_unquoted_commas),
    Case("params-negative-lr", "tabular", "ingest", ("models.tabular-mlp.train.lr",), negative_lr),
    Case("params-batch-size-zero", "tabular", "ingest", ("models.tabular-mlp.train.batch_size",),
         batch_size_zero),
    Case("params-epochs-zero", "tabular", "ingest", ("models.tabular-mlp.train.epochs",), epochs_zero),
    Case("params-seed-string", "tabular", "ingest", ("models.tabular-mlp.train.seed",), seed_string),
    Case("params-model-unknown-task", "tabular", "ingest", ("models.tabular-mlp.task", "tabluar"),
         model_unknown_task),
    Case("params-column-two-roles", "tabular", "ingest", ("tasks.tabular.columns", "'age'"),
         column_two_roles),
    Case("params-positive-label-absent", "tabular", "preprocess", ("columns.positive_label", ">50k"),
         positive_label_absent),
    Case("params-csv-option-typo", "tabular", "ingest", (INCOME, "seperator"), csv_option_typo),
    Case("params-unknown-primary-metric", "tabular", "ingest",
         ("models.tabular-mlp.gates.primary_metric", "balanced_acuracy"), unknown_primary_metric),
    Case("params-split-column-missing", "tabular", "ingest", ("'fold'", "split"),  # via DVC: preprocess
         split_column_missing),
    Case("params-split-column-values", "tabular", "preprocess", ("'fold'", "['1', '2'", "not a split"),
         split_column_values),
    Case("params-test-file-missing", "tabular", "ingest", ("data/input/income.test", "not found"),
         test_file_missing),
    Case("params-python-tag", "tabular", "ingest", ("params.yaml", "python/object"), nothing,
         edit_text=python_tag),
    Case("params-tab-indent", "tabular", "ingest", ("params.yaml", "line"), nothing, edit_text=tab_indent),
    Case("env-tracking-uri-ftp", "tabular", "train", ("MLFLOW_TRACKING_URI", "ftp://host/x"), nothing, 65,
         {"MLFLOW_TRACKING_URI": "ftp://host/x"}),
    Case("env-tracking-uri-file", "tabular", "train", ("MLFLOW_TRACKING_URI", "file:"), nothing, 65,
         {"MLFLOW_TRACKING_URI": "file:///tmp/dlops-corpus-mlruns"}),
]  # fmt: skip
