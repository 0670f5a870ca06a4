"""Identifier columns: keyed pseudonyms or dropped at ingest, the key from the environment only."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from tests.conftest import tiny_params

from dlops.kinds.tabular.sources import check_columns, hidden_columns
from dlops.params import ColumnRoles, ConfigError, SplitConfig, load_params
from dlops.privacy.pseudonyms import KEY_ENV, PseudonymKeyError, handling, pseudonymise

KEY = b"a-test-key-of-32-bytes-----------"
ROLES = ColumnRoles(
    target="income",
    numeric=["age"],
    categorical=["job"],
    identifiers={"customer": "pseudonymise", "email": "drop"},
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer": ["C-001", "C-002", "C-001", None],
            "email": ["a@b.org", "c@d.net", "a@b.org", "e@f.io"],
            "age": [30, 40, 30, 50],
            "job": ["Clerk", "Exec", "Clerk", "Exec"],
            "income": ["<=50K", ">50K", "<=50K", ">50K"],
        }
    )


def test_pseudonyms_are_keyed_deterministic_and_keep_nulls() -> None:
    ids = pd.Series(["C-001", "C-002", "C-001", None, 1234.0, 1234])
    first, again = pseudonymise(ids, KEY), pseudonymise(ids, KEY)
    assert first.equals(again)
    expected = "p_" + hmac.new(KEY, b"C-001", hashlib.sha256).hexdigest()[:16]
    assert first[0] == first[2] == expected and first[1] != first[0]
    assert pd.isna(first[3])
    assert first[4] == first[5]  # an integer id read as a float is the same id
    assert pseudonymise(ids, b"another-key-of-16-bytes")[0] != expected


def test_ingest_pseudonymises_and_drops_identifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    checked = check_columns(_frame(), ROLES, where="t.csv")
    assert "email" not in checked.columns
    assert checked["customer"].iloc[0] == checked["customer"].iloc[2]
    assert checked["customer"].dropna().str.fullmatch(r"p_[0-9a-f]{16}").all()
    assert not checked.isin(["C-001", "C-002", "a@b.org"]).any().any()
    assert handling(ROLES.identifiers) == {"customer": "pseudonymised", "email": "dropped"}


@pytest.mark.parametrize("key", [None, "short"])
def test_a_missing_or_short_key_names_the_variable_and_the_column(
    monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    if key is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, key)
    with pytest.raises(PseudonymKeyError) as err:
        check_columns(_frame(), ROLES, where="t.csv")
    assert KEY_ENV in str(err.value) and "'customer'" in str(err.value) and err.value.exit_code == 65
    assert key is None or key not in str(err.value)  # the key is never echoed


def test_dropping_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    roles = ROLES.model_copy(update={"identifiers": {"email": "drop", "customer": "drop"}})
    assert list(check_columns(_frame(), roles, where="t.csv").columns) == ["age", "job", "income"]


def test_a_missing_identifier_column_is_named() -> None:
    with pytest.raises(ValueError, match=r"'customer' \(identifier\)"):
        check_columns(_frame().drop(columns=["customer"]), ROLES, where="t.csv")


def test_identifiers_are_no_model_input() -> None:
    frame = _frame().assign(__record=1)
    assert hidden_columns(frame, SplitConfig(), ROLES) == ["__record", "customer", "email"]


def _load(tmp_path: Path, raw: dict[str, Any]) -> Any:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


@pytest.mark.parametrize("role", ["categorical", "sensitive", "ignored"])
def test_an_identifier_with_another_role_is_a_params_error(tmp_path: Path, role: str) -> None:
    raw = tiny_params()
    column = raw["tasks"]["tabular"]["columns"]["sensitive"][0]
    if role != "sensitive":
        column = "note"
        raw["tasks"]["tabular"]["columns"].setdefault(role, []).append(column)
    raw["tasks"]["tabular"]["columns"]["identifiers"] = {column: "pseudonymise"}
    with pytest.raises(ConfigError, match=rf"tasks\.tabular\.columns: column '{column}' is both"):
        _load(tmp_path, raw)


def test_an_unknown_handling_is_a_params_error(tmp_path: Path) -> None:
    raw = tiny_params(**{"tasks.tabular.columns.identifiers": {"customer": "hash"}})
    with pytest.raises(ConfigError, match=r"tasks\.tabular\.columns\.identifiers\.customer"):
        _load(tmp_path, raw)
