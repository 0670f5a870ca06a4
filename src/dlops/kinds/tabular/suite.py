"""Great Expectations suite of a tabular task, profiled from a reference table, and the runner's call.

As in TFDV, `draft_suite` profiles a reference table into a suite that is committed under expectations/
and reviewed like code; `validate_table` runs it through the shared runner (`dlops.data.validation`).
Two checks are phrased indirectly:
- class balance: for each label c, `expect_column_values_to_be_in_set(target, [c])` with
  `mostly = min_class_fraction`, i.e. at least that fraction of the non-null labels is c;
- duplicates: `expect_column_values_to_be_unique` on `__record` (a hash of the whole source row, ignored
  columns included) with `mostly = 1 - max_duplicate_fraction`; GE counts each row of a duplicated group,
  the first one included. Rows that only share their features (different people with the same age and
  hours) are not duplicates: preprocess keeps them in one split, and their share is in the summary.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from dlops.data.validation import CRITICAL, NUMERIC_TYPES, expect, fraction, json_safe, run_suite, without_ids
from dlops.params import ColumnRoles, ValidateConfig
from dlops.privacy.pii import Detector, detectors, found_in

log = logging.getLogger(__name__)

RANGE_MARGIN = 0.1  # numeric bounds = observed [min, max] widened by 10 % of the range
RANGE_MOSTLY = 0.995  # a few out-of-range values (0.5 %) pass; more is a broken feed
MAX_SET_SIZE = 1000  # more distinct values than this is an id or free text, not a category


def declared_columns(columns: ColumnRoles) -> list[str]:
    """Every column the suite covers, in a stable order: numeric, categorical, sensitive, target."""
    names = [*columns.numeric, *columns.categorical, *columns.sensitive, columns.target]
    return list(dict.fromkeys(names))


def validate_table(
    df: pd.DataFrame, suite: dict[str, Any], columns: ColumnRoles, cfg: ValidateConfig, docs_dir: Path | None
) -> dict[str, Any]:
    """The suite's summary on a tabular task's raw table (`run_suite` over its declared columns), with
    the share of feature-identical rows (`feature_duplicates`)."""
    from dlops.kinds.tabular.sources import feature_duplicates

    summary = run_suite(df, suite, declared_columns(columns), cfg, docs_dir)
    return {**summary, "feature_duplicates": feature_duplicates(df, columns)}


# ------------------------------------------------------------------------------------------------ draft
def draft_suite(df: pd.DataFrame, columns: ColumnRoles, cfg: ValidateConfig, name: str) -> dict[str, Any]:
    """Profile a reference table into a suite (GE's suite JSON layout as a plain dict) to review, commit."""
    import great_expectations as gx

    gxe = gx.expectations
    declared = declared_columns(columns)
    missing = [c for c in declared if c not in df.columns]
    if missing:
        raise ValueError(f"reference table lacks declared columns {missing}; it has {list(df.columns)}")
    for col in columns.numeric:
        if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            raise ValueError(f"column {col!r} is declared numeric but has dtype {df[col].dtype}")

    exps = [
        expect(gxe.ExpectTableRowCountToBeBetween, "validate.min_rows", min_value=cfg.min_rows),
        _duplicate_check(gxe, df, declared, cfg),
    ]
    found = detectors(cfg.pii.national_ids)
    for col in declared:
        exps.append(expect(gxe.ExpectColumnToExist, "declared in params columns", column=col))
        exps.append(_null_check(gxe, col, df[col], columns, cfg))
        if col in columns.numeric:
            exps += _numeric_checks(gxe, col, df[col])
        if col in (*columns.categorical, *columns.sensitive, columns.target):
            exps += _category_check(gxe, col, df[col], columns, name, found)
    exps += _balance_checks(gxe, columns.target, df[columns.target], cfg, name)

    meta = {"dlops": {"reference_rows": len(df), "drafted_by": "dlops expectations init", "task": name}}
    suite = gx.ExpectationSuite(name=name, expectations=exps, meta=meta)
    return without_ids(suite.to_json_dict())


def _duplicate_check(gxe: Any, df: pd.DataFrame, declared: list[str], cfg: ValidateConfig) -> Any:
    """Exact duplicate records: the same whole source row (`__record`), at most max_duplicate_fraction."""
    from dlops.kinds.tabular.sources import RECORD

    mostly = fraction(1 - cfg.max_duplicate_fraction)
    why = "validate.max_duplicate_fraction: exact duplicate records (every source column, ignored ones too)"
    if RECORD in df.columns:
        return expect(gxe.ExpectColumnValuesToBeUnique, why, column=RECORD, mostly=mostly)
    return expect(  # a frame read without its record hash: rows repeated across the declared columns
        gxe.ExpectCompoundColumnsToBeUnique, why, column_list=declared, mostly=mostly, ignore_row_if="never"
    )


def _null_check(gxe: Any, col: str, series: pd.Series, columns: ColumnRoles, cfg: ValidateConfig) -> Any:
    null_rate = float(series.isna().mean())
    if col == columns.target or (col in columns.sensitive and null_rate == 0.0):
        mostly, why = 1.0, "labels and sensitive attributes may not be missing"
    else:  # a sensitive column that is already incomplete in the reference is treated like a feature
        mostly = fraction(1 - max(cfg.max_null_fraction, 2 * null_rate))
        why = f"validate.max_null_fraction, or twice the reference rate ({null_rate:.2%})"
    return expect(gxe.ExpectColumnValuesToNotBeNull, why, column=col, mostly=mostly)


def _numeric_checks(gxe: Any, col: str, series: pd.Series) -> list[Any]:
    checks = [
        expect(
            gxe.ExpectColumnValuesToBeInTypeList, "numeric stays numeric", column=col, type_list=NUMERIC_TYPES
        )
    ]
    observed = series.dropna()
    if observed.empty:
        return checks
    low, high = float(observed.min()), float(observed.max())
    margin = RANGE_MARGIN * (high - low) or max(1.0, RANGE_MARGIN * abs(high))
    lower = max(0.0, low - margin) if low >= 0 else low - margin
    upper = high + margin
    if pd.api.types.is_integer_dtype(series) or (observed == observed.round()).all():
        bounds: tuple[float, float] = (math.floor(lower), math.ceil(upper))
    else:
        bounds = (float(f"{lower:.6g}"), float(f"{upper:.6g}"))
    why = f"reference range [{low:g}, {high:g}] widened by {RANGE_MARGIN:.0%}; a few outliers pass"
    between = gxe.ExpectColumnValuesToBeBetween
    checks.append(
        expect(between, why, column=col, min_value=bounds[0], max_value=bounds[1], mostly=RANGE_MOSTLY)
    )
    return checks


def _category_check(
    gxe: Any, col: str, series: pd.Series, columns: ColumnRoles, name: str, found: tuple[Detector, ...]
) -> list[Any]:
    values = _distinct(series)
    if len(values) > MAX_SET_SIZE:
        log.warning("draft %s: %r has %d distinct values; no category set drafted", name, col, len(values))
        return []
    if any(isinstance(v, str) and found_in(v, found) for v in values):
        # the set would copy e-mails or card numbers into the committed suite and its Data Docs
        log.warning("draft %s: %r holds direct identifiers; no category set drafted", name, col)
        return []
    if col in columns.sensitive or col == columns.target:
        why, severity = "a new group or label breaks fairness reports and label encoding", CRITICAL
        return [expect(gxe.ExpectColumnValuesToBeInSet, why, severity, column=col, value_set=values)]
    why = "a few rows of an unseen category map to 'unknown' downstream; more is a changed or broken feed"
    in_set = gxe.ExpectColumnValuesToBeInSet
    return [expect(in_set, why, CRITICAL, column=col, value_set=values, mostly=RANGE_MOSTLY)]


def _balance_checks(gxe: Any, target: str, labels: pd.Series, cfg: ValidateConfig, name: str) -> list[Any]:
    """Each label at least `min_class_fraction` of the non-null labels: in_set([label]) with that `mostly`."""
    if cfg.min_class_fraction <= 0:
        return []
    shares = labels.value_counts(normalize=True)
    checks = []
    for value in _distinct(labels):
        share = float(shares.get(value, 0.0))
        if share < cfg.min_class_fraction:
            log.warning("draft %s: label %r is only %.1f%% of the reference", name, value, 100 * share)
        why = f"class balance: label {value!r} is at least validate.min_class_fraction of labels"
        in_set = gxe.ExpectColumnValuesToBeInSet
        checks.append(expect(in_set, why, column=target, value_set=[value], mostly=cfg.min_class_fraction))
    return checks


def _distinct(series: pd.Series) -> list[Any]:
    values = {json_safe(v) for v in series.dropna().unique()}
    return sorted(values, key=lambda v: (type(v).__name__, v))
