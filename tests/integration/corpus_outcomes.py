"""Corpus cases whose right outcome is not a plain stop on bad input (tests/integration/test_bad_inputs.py):

- accepted with a warning (exit 0 at `stage`; the names appear in the log): a constant column, NUL
  bytes in texts, a batch larger than the data;
- a candidate the gates reject (exit 3 at register; the champion and its alias stay);
- a tracking store another process holds locked (exit 75, transient: a rerun succeeds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from tests.integration.corpus_inputs import Case, Params


def constant_column(root: Path, params: Params) -> None:
    path = root / "data" / "input" / "income.csv"
    frame = pd.read_csv(path)
    frame["workclass"] = "Private"
    frame.to_csv(path, index=False)


def nul_bytes_in_texts(root: Path, params: Params) -> None:
    path = root / "data" / "input" / "reviews.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for i in (3, 9):
        record = json.loads(lines[i])
        record["text"] = record["text"].replace(" ", "\x00", 1)
        lines[i] = json.dumps(record) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def batch_larger_than_data(root: Path, params: Params) -> None:
    params["models"]["tabular-mlp"]["train"]["batch_size"] = 100_000


def unreachable_gate(root: Path, params: Params) -> None:
    """A retrained candidate (another learning rate) against an accuracy no model reaches."""
    entry = params["models"]["tabular-mlp"]
    entry["train"]["lr"] = float(entry["train"]["lr"]) * 0.5
    entry["gates"]["min_primary"] = 0.999


def store_locked(root: Path, params: Params) -> None:
    """Another process holds mlflow.db's write lock for the next 60 s (a retrained candidate must log)."""
    entry = params["models"]["tabular-mlp"]
    entry["train"]["lr"] = float(entry["train"]["lr"]) * 0.5
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(root / "mlflow.db")], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # readers read on, writers wait and fail
print("locked", flush=True)
time.sleep(60)
"""

OUTCOME_CASES = [
    Case("accepted-constant-column", "tabular", "validate", ("'workclass' holds one value",),
         constant_column, 0),
    Case("accepted-nul-bytes", "text", "validate", ("2 row(s) hold NUL bytes",), nul_bytes_in_texts, 0),
    Case("accepted-batch-larger-than-data", "tabular", "train", ("batch_size 100000 is larger than",),
         batch_larger_than_data, 0),
    Case("rejected-by-a-gate", "tabular", "register", ("rejected", "min_primary"), unreachable_gate, 3),
    Case("env-tracking-store-locked", "tabular", "train", ("mlflow.db", "locked", "run the command again"),
         store_locked, 75),
]  # fmt: skip
