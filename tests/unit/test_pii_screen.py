"""The PII screen in validate: its params, its summary rows and counts, and masked examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from tests.conftest import tiny_params

from dlops.data.validation import CRITICAL, DataValidationError, _examples, raise_on_failure, recounted
from dlops.params import ConfigError, PiiScreen, ValidateConfig, load_params
from dlops.privacy.pii import detectors
from dlops.privacy.pii_summary import string_columns, with_pii_screen

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"


def _load(tmp_path: Path, raw: dict[str, Any]) -> Any:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


def _suite_summary() -> dict[str, Any]:
    row = {"expectation": "expect_column_to_exist", "column": "age", "severity": CRITICAL, "success": True}
    return recounted({"row_count": 4, "results": [row]})


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "note": [f"mail {EMAIL}", f"paid with {CARD}", f"{EMAIL} and {CARD}", None],
            "job": ["Clerk", "Exec", "Clerk", "Exec"],
            "age": [30, 40, 50, 60],
        }
    )


# ------------------------------------------------------------------------------------------------ params
def test_the_screen_is_on_and_critical_by_default() -> None:
    assert ValidateConfig().pii == PiiScreen(severity="critical", national_ids={})


def test_a_bad_national_id_pattern_names_its_key(tmp_path: Path) -> None:
    raw = tiny_params(**{"tasks.tabular.validate.pii": {"national_ids": {"ssn": r"\d{3}-(\d{2}"}}})
    with pytest.raises(ConfigError, match=r"tasks\.tabular\.validate\.pii\.national_ids\.ssn: not a valid"):
        _load(tmp_path, raw)


def test_a_national_id_pattern_that_matches_the_empty_string_is_refused(tmp_path: Path) -> None:
    raw = tiny_params(**{"tasks.tabular.validate.pii": {"national_ids": {"any": r"\d*"}}})
    with pytest.raises(ConfigError, match=r"national_ids\.any: .* matches the empty string"):
        _load(tmp_path, raw)


def test_severity_is_one_of_three(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tasks\.tabular\.validate\.pii\.severity"):
        _load(tmp_path, tiny_params(**{"tasks.tabular.validate.pii": {"severity": "loud"}}))
    params = _load(tmp_path, tiny_params(**{"tasks.tabular.validate.pii": {"severity": "warning"}}))
    assert params.task("tabular").validate_.pii.severity == "warning"


# --------------------------------------------------------------------------------------------- summaries
def test_one_failed_row_per_column_and_kind_one_passing_row_per_clean_column() -> None:
    table = _table()
    summary = with_pii_screen(_suite_summary(), table, string_columns(table), PiiScreen())
    screened = [r for r in summary["results"] if r["expectation"] == "pii_screen"]
    assert [(r["column"], r["success"], r["kwargs"]) for r in screened] == [
        ("job", True, {}),
        ("note", False, {"kind": "card"}),
        ("note", False, {"kind": "email"}),
    ]
    assert summary["pii"] == [
        {"column": "note", "kind": "card", "rows": 2, "share": 0.5},
        {"column": "note", "kind": "email", "rows": 2, "share": 0.5},
    ]
    assert (summary["evaluated"], summary["failed_critical"], summary["failed_warning"]) == (4, 2, 0)
    assert summary["success"] is False
    card = screened[1]
    assert (
        card["observed"] == {"kind": "card", "rows": 2, "share": 0.5} and card["unexpected_percent"] == 50.0
    )
    assert card["unexpected_examples"] == ["paid with <card>", "<email> and <card>"]
    assert card["detail"] == "column 'note': 2 row(s) (50.0%) hold a card (values masked)"


def test_critical_findings_stop_naming_column_kind_and_count_never_the_value() -> None:
    table = _table()
    summary = with_pii_screen(_suite_summary(), table, ["note"], PiiScreen())
    with pytest.raises(DataValidationError) as err:
        raise_on_failure(summary, "data/raw/t.parquet")
    message = str(err.value)
    assert "failed 2 critical expectations" in message
    assert "pii_screen [column 'note']: column 'note': 2 row(s) (50.0%) hold an email" in message
    assert EMAIL not in message and "4111" not in message


def test_warning_findings_are_logged_and_pass(caplog: pytest.LogCaptureFixture) -> None:
    summary = with_pii_screen(_suite_summary(), _table(), ["note"], PiiScreen(severity="warning"))
    assert summary["success"] and summary["failed_warning"] == 2 and summary["failed_critical"] == 0
    raise_on_failure(summary, "data/raw/t.parquet")
    assert "hold a card" in caplog.text and EMAIL not in caplog.text


def test_off_screens_nothing_and_a_clean_table_lists_no_findings() -> None:
    before = _suite_summary()
    assert with_pii_screen(before, _table(), ["note"], PiiScreen(severity="off")) == before
    clean = with_pii_screen(before, _table(), ["job"], PiiScreen())
    assert clean["pii"] == [] and clean["success"] and clean["evaluated"] == 2


def test_declared_national_ids_are_screened() -> None:
    table = pd.DataFrame({"note": ["ssn 078-05-1120", "none"]})
    summary = with_pii_screen(
        _suite_summary(), table, ["note"], PiiScreen(national_ids={"ssn": r"\d{3}-\d{2}-\d{4}"})
    )
    assert summary["pii"] == [{"column": "note", "kind": "ssn", "rows": 1, "share": 0.5}]
    assert summary["results"][-1]["unexpected_examples"] == ["ssn <ssn>"]


def test_string_columns_skip_numbers_bookkeeping_and_the_named_ones() -> None:
    table = _table().assign(__split="train", user=["p_1"] * 4)
    assert string_columns(table, skip=["user"]) == ["note", "job"]


def test_recount_counts_critical_and_warning_failures() -> None:
    rows = [
        {"success": True, "severity": CRITICAL},
        {"success": False, "severity": "warning"},
        {"success": False, "severity": "info"},
    ]
    counted = recounted({"results": rows, "row_count": 3})
    assert counted == {
        "results": rows,
        "row_count": 3,
        "success": True,
        "evaluated": 3,
        "failed_critical": 0,
        "failed_warning": 2,
    }
    assert recounted({"results": [*rows, {"success": False, "severity": CRITICAL}]})["success"] is False


# ------------------------------------------------------------------------------------------------ masking
def test_ge_examples_are_masked() -> None:
    shown = _examples([EMAIL, f"card {CARD}", "Clerk", {"note": EMAIL}], detectors())
    assert shown == ["<email>", "card <card>", "Clerk", {"note": "<email>"}]
