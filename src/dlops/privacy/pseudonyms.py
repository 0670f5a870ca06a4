"""Keyed pseudonyms for the identifier columns a task declares (`columns.identifiers`).

The same value always gets the same pseudonym under one key, so joins and duplicate checks still work,
but without the key nobody can go back from a pseudonym or test a guess (a plain hash of a phone number
is undone by hashing every phone number). The key comes from the environment (`DLOPS_PSEUDONYM_KEY`),
never from params, and is never logged or tracked.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from dlops.errors import BadInput

KEY_ENV = "DLOPS_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16
PREFIX = "p_"
HEX_CHARS = 16  # 64 bits: no collision expected below billions of distinct values
HANDLED = {"pseudonymise": "pseudonymised", "drop": "dropped"}


class PseudonymKeyError(BadInput):
    """The pseudonym key is missing or too short; the message names the variable and the columns."""


def pseudonym_key(columns: Iterable[str]) -> bytes:
    """The key from `DLOPS_PSEUDONYM_KEY`; missing or shorter than 16 bytes raises naming `columns`."""
    key = os.environ.get(KEY_ENV, "").encode()
    if len(key) >= MIN_KEY_BYTES:
        return key
    state = "is not set" if not key else f"holds {len(key)} bytes"
    names = ", ".join(repr(c) for c in columns)
    raise PseudonymKeyError(
        f"{KEY_ENV} {state}: column(s) {names} are declared `pseudonymise` under columns.identifiers and "
        f"need a secret of at least {MIN_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`, kept outside "
        "the project and params.yaml); nothing was written"
    )


def pseudonymise(series: pd.Series, key: bytes) -> pd.Series:
    """`p_` + the first 16 hex digits of HMAC-SHA256(key, value) per value; missing values stay missing."""
    present = series.notna()
    out = pd.Series(None, index=series.index, dtype=object, name=series.name)
    out[present] = series[present].map(lambda value: pseudonym(value, key))
    return out


def pseudonym(value: Any, key: bytes) -> str:
    digest = hmac.new(key, _as_text(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest[:HEX_CHARS]


def _as_text(value: Any) -> str:
    """An id read as 1234.0 (an integer column with gaps) is the same id as 1234."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def protect_identifiers(frame: pd.DataFrame, identifiers: Mapping[str, str]) -> pd.DataFrame:
    """The frame with each identifier column dropped or pseudonymised, as `identifiers` says; the key is
    read only when a column is to be pseudonymised."""
    keyed = [c for c, how in identifiers.items() if how == "pseudonymise" and c in frame.columns]
    if keyed:
        key = pseudonym_key(keyed)
        frame = frame.assign(**{c: pseudonymise(frame[c], key) for c in keyed})
    dropped = [c for c, how in identifiers.items() if how == "drop" and c in frame.columns]
    return frame.drop(columns=dropped)


def handling(identifiers: Mapping[str, str]) -> dict[str, str]:
    """`{column: "pseudonymised" | "dropped"}`: what ingest did to each identifier column."""
    return {column: HANDLED[how] for column, how in sorted(identifiers.items())}
