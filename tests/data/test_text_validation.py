"""Data tier for text: a suite drafted from the generated reviews passes them and catches blank texts,
over-long texts, unknown labels and groups, and duplicates, naming the column."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from dlops.data.validation import DataValidationError, raise_on_failure
from dlops.kinds.text.reviews import generate_reviews
from dlops.kinds.text.suite import draft_text_suite, validate_table
from dlops.params import SyntheticReviewsSource, TextColumns, TextValidateConfig

COLUMNS = TextColumns(sensitive=["group"])
# The grammar repeats short reviews (about 6% of 600 rows), so duplicates are allowed up to 10% here.
CFG = TextValidateConfig(suite="s.json", min_rows=100, max_chars=400, max_duplicate_fraction=0.1)


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, dict[str, Any]]:
    frame = generate_reviews(SyntheticReviewsSource(source="synthetic-reviews", rows=600, seed=3))
    return frame, draft_text_suite(frame, COLUMNS, CFG, "reviews")


def failed(frame: pd.DataFrame, suite: dict[str, Any]) -> set[tuple[str, str]]:
    summary = validate_table(frame, suite, COLUMNS, CFG, None)
    return {(r["expectation"], r["column"]) for r in summary["results"] if not r["success"]}


def test_the_reference_corpus_passes(reference: tuple[pd.DataFrame, dict[str, Any]]) -> None:
    frame, suite = reference
    summary = validate_table(frame, suite, COLUMNS, CFG, None)
    raise_on_failure(summary, source="data/raw/text.parquet")


def every_tenth(frame: pd.DataFrame, column: str, value: str, step: int = 10) -> pd.DataFrame:
    return frame.assign(**{column: frame[column].where(frame.index % step != 0, value)})


@pytest.mark.parametrize(
    ("corrupt", "expectation", "column"),
    [
        (lambda f: every_tenth(f, "text", "   "), "expect_column_values_to_not_match_regex", "text"),
        (lambda f: every_tenth(f, "text", "x" * 500), "expect_column_value_lengths_to_be_between", "text"),
        (lambda f: every_tenth(f, "label", "meh"), "expect_column_values_to_be_in_set", "label"),
        (lambda f: every_tenth(f, "group", "shouty"), "expect_column_values_to_be_in_set", "group"),
        (lambda f: every_tenth(f, "text", "same again", step=5), "expect_column_values_to_be_unique", "text"),
    ],
)
def test_each_corruption_is_caught_by_name(
    reference: tuple[pd.DataFrame, dict[str, Any]], corrupt: Any, expectation: str, column: str
) -> None:
    frame, suite = reference
    assert (expectation, column) in failed(corrupt(frame), suite)
    with pytest.raises(DataValidationError, match=column):
        raise_on_failure(validate_table(corrupt(frame), suite, COLUMNS, CFG, None), source="t.parquet")


def test_nul_bytes_in_texts_pass_with_a_warning_naming_the_lines(
    reference: tuple[pd.DataFrame, dict[str, Any]],
) -> None:
    from types import SimpleNamespace

    from dlops.kinds import get_kind

    frame, suite = reference
    frame = frame.assign(source=[f"reviews.jsonl:{i + 1}" for i in range(len(frame))])
    frame.loc[[4, 9], "text"] = frame.loc[[4, 9], "text"] + "\x00\x00"
    summary = get_kind("text").validate(frame, suite, SimpleNamespace(columns=COLUMNS, validate_=CFG), None)
    assert summary["warnings"] == [
        "text: 2 row(s) hold NUL bytes (\\x00), e.g. reviews.jsonl:5, reviews.jsonl:10: a binary or "
        "mis-encoded file? the tokenizer reads them as part of a word"
    ]
