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
]  # fmt: skip
