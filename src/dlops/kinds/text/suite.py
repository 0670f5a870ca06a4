"""Great Expectations suites for text tasks, over the raw text table (text, label, group columns).

`draft_text_suite` profiles a reference corpus: text present and not blank, its length (characters)
within [min_chars, max_chars], labels in the seen set with each class at least `min_class_fraction`,
group values as seen, and few duplicate texts. It runs through the shared runner like a table's;
duplicates across splits are prevented in preprocess (copies of one text share a split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dlops.data.validation import expect, fraction, run_suite, without_ids
from dlops.params import TextColumns, TextValidateConfig


def declared_text_columns(columns: TextColumns) -> list[str]:
    return ["text", "label", *columns.sensitive]


def validate_table(
    frame: pd.DataFrame,
    suite: dict[str, Any],
    columns: TextColumns,
    cfg: TextValidateConfig,
    docs_dir: Path | None,
) -> dict[str, Any]:
    """The suite's summary on the text table (`run_suite` over text, label and the group columns)."""
    return run_suite(frame, suite, declared_text_columns(columns), cfg, docs_dir)


def draft_text_suite(
    frame: pd.DataFrame, columns: TextColumns, cfg: TextValidateConfig, name: str
) -> dict[str, Any]:
    import great_expectations as gx

    gxe = gx.expectations
    missing = [c for c in declared_text_columns(columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"reference text table lacks columns {missing} (loader or group columns)")
    labels = sorted(str(v) for v in frame["label"].dropna().unique())
    exps = [
        expect(gxe.ExpectTableRowCountToBeBetween, "validate.min_rows", min_value=cfg.min_rows),
        expect(gxe.ExpectColumnValuesToNotBeNull, "every row has a text", column="text"),
        expect(
            gxe.ExpectColumnValuesToNotMatchRegex,
            "a blank text carries no signal",
            column="text",
            regex=r"^\s*$",
        ),
        expect(
            gxe.ExpectColumnValueLengthsToBeBetween,
            "validate.min_chars / max_chars",
            column="text",
            min_value=cfg.min_chars,
            max_value=cfg.max_chars,
        ),
        expect(gxe.ExpectColumnValuesToNotBeNull, "every row has a label", column="label"),
        expect(
            gxe.ExpectColumnValuesToBeInSet,
            "labels as in the reference corpus",
            column="label",
            value_set=labels,
        ),
        expect(
            gxe.ExpectColumnValuesToBeUnique,
            "validate.max_duplicate_fraction: identical texts",
            column="text",
            mostly=fraction(1 - cfg.max_duplicate_fraction),
        ),
    ]
    for label in labels:
        exps.append(
            expect(
                gxe.ExpectColumnValuesToBeInSet,
                f"validate.min_class_fraction: label {label!r} is at least this share of texts",
                column="label",
                value_set=[label],
                mostly=fraction(cfg.min_class_fraction),
            )
        )
    for attr in columns.sensitive:
        values = sorted(str(v) for v in frame[attr].dropna().unique())
        exps.append(expect(gxe.ExpectColumnValuesToNotBeNull, "group of every text", column=attr))
        exps.append(expect(gxe.ExpectColumnValuesToBeInSet, "groups as seen", column=attr, value_set=values))
    meta = {"dlops": {"reference_rows": len(frame), "drafted_by": "dlops expectations init", "task": name}}
    return without_ids(gx.ExpectationSuite(name=name, expectations=exps, meta=meta).to_json_dict())
