"""Data tier: a suite drafted from a clean table passes it and catches each kind of corruption by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dlops.data.validation import DataValidationError, load_suite, raise_on_failure, save_suite
from dlops.kinds.tabular.suite import draft_suite, validate_table
from dlops.params import ColumnRoles, ValidateConfig

COLUMNS = ColumnRoles(
    target="income",
    positive_label=">50K",
    sensitive=["sex", "race"],
    numeric=["age", "education_years", "hours_per_week", "capital_gain", "neighborhood_income"],
    categorical=["workclass", "occupation", "marital_status"],
)
CFG = ValidateConfig(
    min_rows=500, max_null_fraction=0.1, min_class_fraction=0.05, max_duplicate_fraction=0.01
)
SOURCE = "data/raw/tabular.parquet"


def clean_table(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The synthetic-income schema with plausible values and a few missing cells."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(17, 91, rows),
        "education_years": rng.integers(1, 17, rows).astype(float),
        "hours_per_week": rng.integers(5, 80, rows).astype(float),
        "capital_gain": np.where(rng.random(rows) < 0.9, 0.0, rng.integers(100, 20_000, rows)),
        "neighborhood_income": rng.normal(55_000, 12_000, rows).clip(15_000).round(2),
        "workclass": rng.choice(["Private", "Self-emp", "Government", "Unemployed"], rows),
        "occupation": rng.choice(["Tech", "Sales", "Craft", "Service", "Admin"], rows),
        "marital_status": rng.choice(["Married", "Never-married", "Divorced", "Widowed"], rows),
        "sex": rng.choice(["Female", "Male"], rows, p=[0.45, 0.55]),
        "race": rng.choice(["White", "Black", "Asian", "Other"], rows, p=[0.7, 0.12, 0.1, 0.08]),
        "income": rng.choice(["<=50K", ">50K"], rows, p=[0.7, 0.3]),
    })  # fmt: skip
    for column in ("education_years", "hours_per_week", "workclass", "occupation"):
        frame.loc[rng.choice(rows, 20, replace=False), column] = None
    return frame


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return clean_table()


@pytest.fixture(scope="module")
def suite(table: pd.DataFrame) -> dict[str, Any]:
    return draft_suite(table, COLUMNS, CFG, name="tabular")


@pytest.fixture(scope="module")
def clean_summary(table: pd.DataFrame, suite: dict[str, Any]) -> dict[str, Any]:
    return validate_table(table, suite, COLUMNS, CFG, docs_dir=None)


def test_clean_table_passes(clean_summary: dict[str, Any]) -> None:
    assert clean_summary["success"], [r for r in clean_summary["results"] if not r["success"]]
    assert clean_summary["failed_critical"] == clean_summary["failed_warning"] == 0
    assert clean_summary["row_count"] == 1000
    raise_on_failure(clean_summary, SOURCE)
    json.dumps(clean_summary, allow_nan=False)  # a DVC metric: strict JSON


def test_suite_covers_every_section(suite: dict[str, Any]) -> None:
    kinds = {(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]}
    for col in [*COLUMNS.numeric, *COLUMNS.categorical, *COLUMNS.sensitive, COLUMNS.target]:
        assert ("expect_column_to_exist", col) in kinds
        assert ("expect_column_values_to_not_be_null", col) in kinds
    for col in COLUMNS.numeric:
        assert ("expect_column_values_to_be_in_type_list", col) in kinds
        assert ("expect_column_values_to_be_between", col) in kinds
    severity = {e["kwargs"].get("column"): e["severity"] for e in suite["expectations"]
                if e["type"] == "expect_column_values_to_be_in_set"}  # fmt: skip
    assert severity["workclass"] == severity["sex"] == severity["income"] == "critical"
    assert all(e["meta"]["why"] for e in suite["expectations"])


def _set(column: str, values: Any, fraction: float = 1.0) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def corrupt(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        rows = df.index[: int(len(df) * fraction)]
        df.loc[rows, column] = values
        return df

    return corrupt


def _case(name: str, corrupt: Callable[[pd.DataFrame], pd.DataFrame], expectation: str, column: str | None,
          detail: str) -> Any:  # fmt: skip
    return pytest.param(corrupt, expectation, column, detail, id=name)


IN_SET = "expect_column_values_to_be_in_set"
CORRUPTIONS = [
    _case("dropped column", lambda df: df.drop(columns="occupation"),
          "expect_column_to_exist", "occupation", "column missing"),
    _case("impossible ages", _set("age", np.tile([-5, 500], 50), 0.1),
          "expect_column_values_to_be_between", "age", "e.g. -5, 500"),
    _case("nulls in target", _set("income", None, 0.05),
          "expect_column_values_to_not_be_null", "income", "5.0% missing"),
    _case("new label", _set("income", "unknown", 0.03), IN_SET, "income", "e.g. 'unknown'"),
    _case("new sensitive group", _set("race", "Martian", 0.02), IN_SET, "race", "e.g. 'Martian'"),
    _case("too few rows", lambda df: df.head(100),
          "expect_table_row_count_to_be_between", None, "at least 500"),
    _case("heavy duplication", lambda df: pd.concat([df.head(500)] * 2, ignore_index=True),
          "expect_compound_columns_to_be_unique", None, "100.0% of rows duplicated"),
    _case("all one class", _set("income", "<=50K"), IN_SET, "income", "only 0.0% in ['>50K']"),
    _case("numeric as strings", lambda df: df.assign(age=df["age"].astype(str)),
          "expect_column_values_to_be_in_type_list", "age", "expected a numeric dtype"),
]  # fmt: skip


@pytest.mark.parametrize(("corrupt", "expectation", "column", "detail"), CORRUPTIONS)
def test_corruption_is_caught_by_name(
    corrupt: Callable[[pd.DataFrame], pd.DataFrame],
    expectation: str,
    column: str | None,
    detail: str,
    table: pd.DataFrame,
    suite: dict[str, Any],
) -> None:
    summary = validate_table(corrupt(table), suite, COLUMNS, CFG, docs_dir=None)
    assert not summary["success"] and summary["failed_critical"] >= 1
    with pytest.raises(DataValidationError) as caught:
        raise_on_failure(summary, SOURCE)
    message = str(caught.value)
    where = f" [column {column!r}]" if column else ""
    line = next((ln for ln in message.splitlines() if ln.startswith(f"  - {expectation}{where}:")), None)
    assert line is not None, message
    assert detail in line, message
    assert message.startswith(f"{SOURCE} failed {summary['failed_critical']} critical expectation")
    assert len(caught.value.failures) == summary["failed_critical"]
    json.dumps(summary, allow_nan=False)


def test_a_rare_unseen_category_passes_and_a_common_one_fails(
    table: pd.DataFrame, suite: dict[str, Any]
) -> None:
    rare = validate_table(_set("workclass", "Astronaut", 0.002)(table), suite, COLUMNS, CFG, docs_dir=None)
    assert rare["success"]  # a few rows map to 'unknown' downstream
    common = validate_table(_set("workclass", "Astronaut", 0.02)(table), suite, COLUMNS, CFG, docs_dir=None)
    with pytest.raises(DataValidationError) as info:
        raise_on_failure(common, SOURCE)
    assert "[column 'workclass']: 2.0% not in" in str(info.value) and "'Astronaut'" in str(info.value)


def test_suite_round_trips_and_summary_is_deterministic(
    tmp_path: Path, table: pd.DataFrame, suite: dict[str, Any], clean_summary: dict[str, Any]
) -> None:
    path = tmp_path / "tabular.json"
    save_suite(suite, path)
    text = path.read_text()
    assert text.endswith("}\n") and text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert load_suite(path) == suite
    again = validate_table(table, load_suite(path), COLUMNS, CFG, docs_dir=None)
    assert json.dumps(again, sort_keys=True) == json.dumps(clean_summary, sort_keys=True)


def test_data_docs_are_written_and_replaced(
    tmp_path: Path, table: pd.DataFrame, suite: dict[str, Any], clean_summary: dict[str, Any]
) -> None:
    docs = tmp_path / "data_docs"
    docs.mkdir()
    (docs / "stale.html").write_text("old run")
    summary = validate_table(table, suite, COLUMNS, CFG, docs_dir=docs)
    assert (docs / "index.html").is_file() and not (docs / "stale.html").exists()
    assert any(docs.glob("validations/**/*.html"))
    assert [p.name for p in tmp_path.iterdir()] == ["data_docs"]  # no staging folders left behind
    assert summary == clean_summary


def test_identifiers_among_unexpected_values_are_masked_in_the_summary_and_data_docs(
    tmp_path: Path, table: pd.DataFrame, suite: dict[str, Any]
) -> None:
    bad = table.copy()
    bad.loc[:59, "workclass"] = "jane.doe@example.com"
    bad.loc[60:119, "occupation"] = "card 4111 1111 1111 1111"
    summary = validate_table(bad, suite, COLUMNS, CFG, docs_dir=tmp_path / "docs")
    shown = {r["column"]: r["unexpected_examples"] for r in summary["results"] if not r["success"]}
    assert shown == {"workclass": ["<email>"], "occupation": ["card <card>"]}
    pages = [p.read_text() for p in (tmp_path / "docs").rglob("*.html")]
    assert not any("jane.doe" in page or "4111 1111" in page for page in pages)


def test_a_drafted_suite_holds_no_identifier_in_its_category_sets(table: pd.DataFrame) -> None:
    noted = table.assign(
        workclass=[f"mail {i}@example.com" if i < 5 else "Private" for i in range(len(table))]
    )
    drafted = json.dumps(draft_suite(noted, COLUMNS, CFG, name="tabular"))
    assert "@example.com" not in drafted and "Private" not in drafted  # no set for that column at all


def test_draft_names_missing_declared_columns(table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="occupation"):
        draft_suite(table.drop(columns="occupation"), COLUMNS, CFG, name="tabular")


def test_unreadable_suite_names_the_bad_expectation(table: pd.DataFrame, suite: dict[str, Any]) -> None:
    broken = {**suite, "expectations": [*suite["expectations"], {"type": "expect_nonsense", "kwargs": {}}]}
    with pytest.raises(ValueError, match="expect_nonsense"):
        validate_table(table, broken, COLUMNS, CFG, docs_dir=None)


def test_a_limit_changed_in_params_names_the_suite_that_holds_it(
    table: pd.DataFrame, suite: dict[str, Any]
) -> None:
    from dlops.data.validation import drafted_params, limits_hint, params_disagreement

    recorded = json.loads(json.dumps(suite))
    recorded.setdefault("meta", {}).setdefault("dlops", {})["validate"] = drafted_params(CFG)
    raised = CFG.model_copy(update={"max_duplicate_fraction": 0.2})
    changed = params_disagreement(recorded, raised)
    assert changed == ["validate.max_duplicate_fraction: params say 0.2, the suite was drafted with 0.01"]
    assert params_disagreement(suite, raised) == []  # a suite drafted before the record: nothing to compare
    copies = pd.concat([table, table.iloc[:60]], ignore_index=True)  # 11% of rows repeated
    summary = validate_table(copies, recorded, COLUMNS, raised, None)
    hint = limits_hint(summary, "expectations/tabular.json", "tabular", changed)
    with pytest.raises(DataValidationError) as caught:
        raise_on_failure(summary, SOURCE, hint=hint)
    message = str(caught.value)
    assert "rows duplicated" in message and "expectations/tabular.json" in message
    assert "`dlops expectations init tabular --force`" in message and "params say 0.2" in message


def test_a_constant_column_passes_with_a_warning_naming_it(
    table: pd.DataFrame, suite: dict[str, Any]
) -> None:
    from types import SimpleNamespace

    from dlops.kinds import get_kind

    constant = table.assign(occupation="Tech")  # in the drafted set: the suite accepts it
    task = SimpleNamespace(columns=COLUMNS, validate_=CFG)
    summary = get_kind("tabular").validate(constant, suite, task, None)
    assert summary["success"] and len(summary["warnings"]) == 1
    assert "column 'occupation' holds one value ('Tech') in every row" in summary["warnings"][0]
    assert "warnings" not in get_kind("tabular").validate(table, suite, task, None)  # none: no key


def test_values_ge_cannot_evaluate_are_named_by_their_type(
    table: pd.DataFrame, suite: dict[str, Any]
) -> None:
    odd = table.copy()
    odd["neighborhood_income"] = [f"{v:,.0f}" for v in table["neighborhood_income"]]  # "55,123"
    odd["occupation"] = [[v] for v in table["occupation"]]  # a list per cell (a JSON array column)
    summary = validate_table(odd, suite, COLUMNS, CFG, docs_dir=None)
    failed = {(r["column"], r["detail"]) for r in summary["results"] if not r["success"]}
    details = "\n".join(d for _, d in failed)
    assert "error:" not in details and "unhashable" not in details and "TypeError" not in details, details
    income = [d for c, d in failed if c == "neighborhood_income"]
    assert any("holds str values (e.g. '" in d for d in income), income  # "55,123" is text, not a number
    assert "observed 'str', expected a numeric dtype, e.g. '" in details
    assert "not evaluated: column 'occupation' holds list values (e.g. [" in details  # the duplicate rule
    assert "not in ['Admin', 'Craft', 'Sales', 'Service', 'Tech']" in details and "e.g. ['Craft']" in details
