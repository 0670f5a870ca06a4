"""Great Expectations suites for image tasks, over the per-image table (one row per image, no pixels).

`draft_image_suite` profiles a reference set (TFDV's "infer, then validate"): every file readable, its
shape, channels and dtype as seen, pixels in [0, 255] and not blank, labels in the seen set, each
class's share within [min_class_fraction, max_class_fraction], and few duplicate images (by sha1).
The suite runs through the same `validate_table` as tables; `name_files` then adds, to each failed
expectation, the `source` of a few offending images, so the error names the files.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dlops.config import ImageColumns, ImageValidateConfig
from dlops.data.validation import CRITICAL, WARNING, _expect, _fraction, _without_ids

# The per-image table's columns that the suite covers (pixels and sha1 are checked indirectly).
IMAGE_COLUMNS = ["readable", "height", "width", "channels", "dtype", "pixel_min", "pixel_max", "label"]
SHOWN_FILES = 5


def declared_image_columns(columns: ImageColumns) -> list[str]:
    return [*IMAGE_COLUMNS, "class_name", *columns.sensitive]


def table_for_validation(raw: pd.DataFrame) -> pd.DataFrame:
    """The raw table without its pixel bytes (GE profiles columns; bytes would only slow it down)."""
    return raw.drop(columns=["image"], errors="ignore")


def draft_image_suite(
    frame: pd.DataFrame, columns: ImageColumns, cfg: ImageValidateConfig, name: str
) -> dict[str, Any]:
    import great_expectations as gx

    gxe = gx.expectations
    missing = [c for c in declared_image_columns(columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"reference image table lacks columns {missing} (metadata CSV or loader)")
    ok = frame[frame["readable"]]
    labels = sorted(int(v) for v in ok["label"].unique())

    def in_seen_set(col: str, why: str) -> Any:
        values = sorted(ok[col].unique().tolist())
        return _expect(gxe.ExpectColumnValuesToBeInSet, why, column=col, value_set=values)

    exps = [
        _expect(gxe.ExpectTableRowCountToBeBetween, "validate.min_rows", min_value=cfg.min_rows),
        _expect(gxe.ExpectColumnValuesToBeInSet, "every file decodes", column="readable", value_set=[True]),
        in_seen_set("channels", "channels as in the reference set"),
        in_seen_set("dtype", "pixel dtype as in the reference set"),
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            "image height as in the reference set",
            column="height",
            min_value=int(ok["height"].min()),
            max_value=int(ok["height"].max()),
        ),
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            "image width as in the reference set",
            column="width",
            min_value=int(ok["width"].min()),
            max_value=int(ok["width"].max()),
        ),
        _expect(
            gxe.ExpectColumnValuesToBeBetween, "uint8 pixels", column="pixel_min", min_value=0, max_value=255
        ),
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            "a blank image (every pixel 0) is a broken file more often than data",
            WARNING,
            column="pixel_max",
            min_value=1,
            max_value=255,
        ),
        in_seen_set("label", "labels as in the reference set"),
        in_seen_set("class_name", "class names as in the reference set"),
        _expect(
            gxe.ExpectColumnValuesToBeUnique,
            "validate.max_duplicate_fraction: identical images (sha1)",
            column="sha1",
            mostly=_fraction(1 - cfg.max_duplicate_fraction),
        ),
    ]
    for label in labels:
        exps.append(
            _expect(
                gxe.ExpectColumnValuesToBeInSet,
                f"validate.min_class_fraction: class {label} is at least this share of images",
                column="label",
                value_set=[label],
                mostly=_fraction(cfg.min_class_fraction),
            )
        )
        exps.append(
            _expect(
                gxe.ExpectColumnValuesToNotBeInSet,
                f"validate.max_class_fraction: class {label} is at most this share of images",
                column="label",
                value_set=[label],
                mostly=_fraction(1 - cfg.max_class_fraction),
            )
        )
    for attr in columns.sensitive:
        exps.append(_expect(gxe.ExpectColumnValuesToNotBeNull, "group from the metadata CSV", column=attr))
        exps.append(in_seen_set(attr, "groups as in the reference set"))
    meta = {"dlops": {"reference_rows": len(frame), "drafted_by": "dlops expectations init", "task": name}}
    suite = gx.ExpectationSuite(name=name, expectations=exps, meta=meta)
    return _without_ids(suite.to_json_dict())


def name_files(summary: dict[str, Any], frame: pd.DataFrame, noun: str = "files") -> dict[str, Any]:
    """Append `files: a.png, b.png` (or `lines: reviews.jsonl:7, ...` for texts) to the detail of each
    failed row-level expectation, from the table's `source` column."""
    for row in summary["results"]:
        if row["success"] or row["column"] is None or row["column"] not in frame.columns:
            continue
        bad = _offending(frame, row)
        if bad is not None and bad.any():
            files = frame.loc[bad, "source"].astype(str).tolist()
            more = f" (+{len(files) - SHOWN_FILES} more)" if len(files) > SHOWN_FILES else ""
            row[noun] = files[:SHOWN_FILES]
            row["detail"] += f"; {noun}: {', '.join(files[:SHOWN_FILES])}{more}"
    return summary


def _offending(frame: pd.DataFrame, row: dict[str, Any]) -> pd.Series | None:
    """Rows that break a value-level expectation (None for table-level ones such as class shares)."""
    col, kw, kind = frame[row["column"]], row.get("kwargs") or {}, row["expectation"]
    if kind == "expect_column_values_to_be_in_set" and (kw.get("mostly") or 1.0) >= 1.0:
        return ~col.isin(kw.get("value_set") or [])
    if kind == "expect_column_values_to_be_between":
        low, high = kw.get("min_value"), kw.get("max_value")
        out = pd.Series(False, index=frame.index)
        if low is not None:
            out |= col < low
        if high is not None:
            out |= col > high
        return out
    if kind == "expect_column_values_to_be_unique":
        return col.duplicated(keep=False)
    if kind == "expect_column_values_to_not_be_null":
        return col.isna()
    if kind == "expect_column_value_lengths_to_be_between":
        lengths = col.astype(str).str.len()
        low, high = kw.get("min_value"), kw.get("max_value")
        return (lengths < (low if low is not None else 0)) | (
            lengths > (high if high is not None else math.inf)
        )
    if kind == "expect_column_values_to_not_match_regex" and kw.get("regex"):
        return col.astype(str).str.contains(kw["regex"], regex=True)
    return None


__all__ = ["CRITICAL", "IMAGE_COLUMNS", "declared_image_columns", "draft_image_suite", "name_files"]
