"""Personal data in a table's inputs, through the real `ingest` and `validate` stages of a tiny project.

E-mail addresses and card numbers in a free-text column stop `validate` (severity critical) naming the
column and the count, or pass with a warning; either way no report, log or drafted suite shows one.
Identifier columns reach data/raw only as keyed pseudonyms, or not at all, and never without the key.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.conftest import make_project, tiny_params

from dlops import stages
from dlops.data.validation import DataValidationError
from dlops.privacy.pseudonyms import KEY_ENV, PseudonymKeyError

pytestmark = pytest.mark.slow

ROWS = 200
EMAILS = [f"person{i}.name@example.org" for i in range(20)]  # in 20 rows
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "6011000000000004", "3400 000000 00009"]  # 12 rows
CUSTOMERS = [f"CUST-{i:05d}" for i in range(ROWS)]
KEY = "a-secret-pseudonym-key-for-tests"


def _table() -> pd.DataFrame:
    notes = [f"order {i}: delivered late, box damaged" for i in range(ROWS)]
    for i, email in enumerate(EMAILS):
        notes[i] = f"order {i}: please write to {email} about it"
    for i in range(12):
        notes[20 + i] = f"order {20 + i}: refund to card {CARDS[i % 4]}"
    return pd.DataFrame(
        {
            "customer": CUSTOMERS,
            "email": [f"client{i}@example.net" for i in range(ROWS)],
            "age": [18 + i % 60 for i in range(ROWS)],
            "job": ["Clerk", "Exec", "Craft", "Sales"] * (ROWS // 4),
            "sex": ["Female", "Male"] * (ROWS // 2),
            "note": notes,
            "income": ["<=50K", "<=50K", ">50K", ">50K", "<=50K"] * (ROWS // 5),
        }
    )


def _project(root: Path, identifiers: dict[str, str] | None, severity: str = "critical") -> Path:
    params = tiny_params()
    task = params["tasks"]["tabular"]
    task["ingest"] = {"source": "table", "path": "data/input/people.csv"}
    task["columns"] = {
        "target": "income",
        "positive_label": ">50K",
        "sensitive": ["sex"],
        "numeric": ["age"],
        "categorical": ["job", "note"],
        "ignored": [] if identifiers else ["customer", "email"],
        "identifiers": identifiers or {},
    }
    task["validate"].update(
        suite="expectations/people.json", draft_if_missing=True, min_rows=50, pii={"severity": severity}
    )
    make_project(root, params, dvc=False)
    (root / "data" / "input").mkdir(parents=True)
    _table().to_csv(root / "data" / "input" / "people.csv", index=False)
    return root


def _set_severity(root: Path, severity: str) -> None:
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["tasks"]["tabular"]["validate"]["pii"] = {"severity": severity}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _holding(folders: list[Path], values: list[str], skip: tuple[Path, ...] = ()) -> dict[str, list[str]]:
    """{file: the values found in its bytes} for every file under `folders` (but `skip`)."""
    found = {}
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if any(path.is_relative_to(s) for s in skip):
                continue
            data = path.read_bytes()
            hits = [v for v in values if v.encode() in data]
            if hits:
                found[str(path)] = hits
    return found


def test_identifiers_in_free_text_stop_validate_or_warn_and_never_leak(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _project(tmp_path / "screen", identifiers=None)
    caplog.set_level(logging.INFO)
    stages.ingest("tabular", root)
    assert "'note' holds direct identifiers; no category set drafted" in caplog.text

    with pytest.raises(DataValidationError) as err:  # (a) critical: stops, naming column, kind, count
        stages.validate("tabular", root)
    message = str(err.value)
    assert "column 'note': 20 row(s) (10.0%) hold an email" in message
    assert "column 'note': 12 row(s) (6.0%) hold a card" in message
    summary = json.loads((root / "reports" / "validate" / "tabular" / "summary.json").read_text())
    assert {(f["column"], f["kind"], f["rows"]) for f in summary["pii"]} == {
        ("note", "email", 20),
        ("note", "card", 12),
    }
    assert not summary["success"] and summary["failed_critical"] == 2

    _set_severity(root, "warning")  # (b) warning: passes, logged
    caplog.clear()
    passed: dict[str, Any] = stages.validate("tabular", root)
    assert passed["success"] and passed["failed_warning"] == 2
    assert "hold an email" in caplog.text and "hold a card" in caplog.text

    raw_values = [*EMAILS, *CARDS, *[c.replace(" ", "").replace("-", "") for c in CARDS]]
    # data/raw is the table as given (a warning accepts it); the input file is the user's
    derived = _holding(
        [root / "data", root / "reports", root / "expectations"],
        raw_values,
        skip=(root / "data" / "input", root / "data" / "raw"),
    )
    assert derived == {}
    assert [v for v in raw_values if v in caplog.text or v in message] == []
    shown = [r for r in passed["results"] if r["expectation"] == "pii_screen" and not r["success"]]
    assert any("<email>" in e for r in shown for e in r["unexpected_examples"])


def test_identifier_columns_are_pseudonymised_or_dropped_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path / "ids", identifiers={"customer": "pseudonymise", "email": "drop"})
    raw = root / "data" / "raw" / "tabular.parquet"

    monkeypatch.delenv(KEY_ENV, raising=False)  # (c) without the key: a clear error, nothing written
    with pytest.raises(PseudonymKeyError, match=rf"{KEY_ENV} is not set: column\(s\) 'customer'"):
        stages.ingest("tabular", root)
    assert not raw.exists()

    monkeypatch.setenv(KEY_ENV, KEY)
    stages.ingest("tabular", root)
    table = pd.read_parquet(raw)
    assert "email" not in table.columns
    assert table["customer"].str.fullmatch(r"p_[0-9a-f]{16}").all() and table["customer"].is_unique
    originals = [*CUSTOMERS[:50], "client0@example.net", "client199@example.net"]
    assert _holding([root / "data" / "raw", root / "expectations"], originals) == {}

    _set_severity(root, "warning")  # the free-text column still holds e-mails; this test is about ids
    summary = stages.validate("tabular", root)
    assert summary["identifiers"] == {"customer": "pseudonymised", "email": "dropped"}
    assert "customer" not in {r["column"] for r in summary["results"] if r["expectation"] == "pii_screen"}
    assert KEY not in json.dumps(summary) and KEY not in (root / "params.yaml").read_text()
