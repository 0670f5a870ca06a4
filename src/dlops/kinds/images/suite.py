"""Great Expectations suites for image tasks, over the per-image table (one row per image, no pixels).

`draft_image_suite` profiles a reference set (TFDV's "infer, then validate"): every file readable, its
shape, channels and dtype as seen, pixels in [0, 255] and not blank, labels in the seen set, each
class's share within [min_class_fraction, max_class_fraction], and few duplicate images (by sha1).
The suite runs through the shared runner like a table's (`validate_table`); the Kind's `validate` then
adds, to each failed expectation, the `source` of a few offending images, so the error names the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dlops.data.validation import WARNING, expect, fraction, run_suite, without_ids
from dlops.params import ImageColumns, ImageValidateConfig

# The per-image table's columns that the suite covers (pixels and sha1 are checked indirectly).
IMAGE_COLUMNS = ["readable", "height", "width", "channels", "dtype", "pixel_min", "pixel_max", "label"]


def declared_image_columns(columns: ImageColumns) -> list[str]:
    return [*IMAGE_COLUMNS, "class_name", *columns.sensitive]


def validate_table(
    frame: pd.DataFrame,
    suite: dict[str, Any],
    columns: ImageColumns,
    cfg: ImageValidateConfig,
    docs_dir: Path | None,
) -> dict[str, Any]:
    """The suite's summary on the per-image table (`run_suite` over the image columns)."""
    return run_suite(frame, suite, declared_image_columns(columns), cfg, docs_dir)


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
        return expect(gxe.ExpectColumnValuesToBeInSet, why, column=col, value_set=values)

    exps = [
        expect(gxe.ExpectTableRowCountToBeBetween, "validate.min_rows", min_value=cfg.min_rows),
        expect(gxe.ExpectColumnValuesToBeInSet, "every file decodes", column="readable", value_set=[True]),
        in_seen_set("channels", "channels as in the reference set"),
        in_seen_set("dtype", "pixel dtype as in the reference set"),
        expect(
            gxe.ExpectColumnValuesToBeBetween,
            "image height as in the reference set",
            column="height",
            min_value=int(ok["height"].min()),
            max_value=int(ok["height"].max()),
        ),
        expect(
            gxe.ExpectColumnValuesToBeBetween,
            "image width as in the reference set",
            column="width",
            min_value=int(ok["width"].min()),
            max_value=int(ok["width"].max()),
        ),
        expect(
            gxe.ExpectColumnValuesToBeBetween, "uint8 pixels", column="pixel_min", min_value=0, max_value=255
        ),
        expect(
            gxe.ExpectColumnValuesToBeBetween,
            "a blank image (every pixel 0) is a broken file more often than data",
            WARNING,
            column="pixel_max",
            min_value=1,
            max_value=255,
        ),
        in_seen_set("label", "labels as in the reference set"),
        in_seen_set("class_name", "class names as in the reference set"),
        expect(
            gxe.ExpectColumnValuesToBeUnique,
            "validate.max_duplicate_fraction: identical images (sha1)",
            column="sha1",
            mostly=fraction(1 - cfg.max_duplicate_fraction),
        ),
    ]
    for label in labels:
        exps.append(
            expect(
                gxe.ExpectColumnValuesToBeInSet,
                f"validate.min_class_fraction: class {label} is at least this share of images",
                column="label",
                value_set=[label],
                mostly=fraction(cfg.min_class_fraction),
            )
        )
        exps.append(
            expect(
                gxe.ExpectColumnValuesToNotBeInSet,
                f"validate.max_class_fraction: class {label} is at most this share of images",
                column="label",
                value_set=[label],
                mostly=fraction(1 - cfg.max_class_fraction),
            )
        )
    for attr in columns.sensitive:
        exps.append(expect(gxe.ExpectColumnValuesToNotBeNull, "group from the metadata CSV", column=attr))
        exps.append(in_seen_set(attr, "groups as in the reference set"))
    meta = {"dlops": {"reference_rows": len(frame), "drafted_by": "dlops expectations init", "task": name}}
    suite = gx.ExpectationSuite(name=name, expectations=exps, meta=meta)
    return without_ids(suite.to_json_dict())
