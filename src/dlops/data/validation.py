"""Great Expectations suites for raw tables: infer a suite from a reference table, then validate against it.

As in TFDV, `draft_suite` profiles a reference table into a suite that is committed under expectations/
and reviewed like code; `validate_table` runs it and returns a deterministic summary (a DVC metric);
`raise_on_failure` is the gate. Every check is a stock GE 1.x expectation, so the JSON loads with
`gx.ExpectationSuite(**suite)` and renders in Data Docs. Two checks are phrased indirectly:
- class balance: for each label c, `expect_column_values_to_be_in_set(target, [c])` with
  `mostly = min_class_fraction`, i.e. at least that fraction of the non-null labels is c;
- duplicates: `expect_compound_columns_to_be_unique` over every declared column with
  `mostly = 1 - max_duplicate_fraction`; GE counts each row of a duplicated group, the first one included.
Severity is GE's own `severity` field ("critical" fails the stage, "warning"/"info" are logged);
a hand-written `meta.severity` is honoured when that field is absent.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from dlops.config import (
    ColumnRoles,
    ImageColumns,
    ImageValidateConfig,
    TextColumns,
    TextValidateConfig,
    ValidateConfig,
)

Columns = ColumnRoles | ImageColumns | TextColumns
AnyValidateConfig = ValidateConfig | ImageValidateConfig | TextValidateConfig

log = logging.getLogger(__name__)

CRITICAL, WARNING = "critical", "warning"
RANGE_MARGIN = 0.1  # numeric bounds = observed [min, max] widened by 10 % of the range
RANGE_MOSTLY = 0.995  # a few out-of-range values (0.5 %) pass; more is a broken feed
MAX_SET_SIZE = 1000  # more distinct values than this is an id or free text, not a category
EXAMPLES = 5
# Numeric dtypes as GE's pandas type check names them (numpy names, then pandas nullable dtypes).
NUMERIC_TYPES = [
    *(f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)),
    "float16", "float32", "float64",
    *(f"{kind}{bits}Dtype" for kind in ("Int", "UInt") for bits in (8, 16, 32, 64)),
    "Float32Dtype", "Float64Dtype",
]  # fmt: skip
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


class DataValidationError(ValueError):
    """A table failed critical expectations; `failures` holds their summary rows."""

    def __init__(self, message: str, failures: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


def declared_columns(columns: Columns) -> list[str]:
    """Every column the suite covers, in a stable order: numeric, categorical, sensitive, target."""
    if isinstance(columns, ImageColumns):
        from dlops.kinds.images.suite import declared_image_columns

        return declared_image_columns(columns)
    if isinstance(columns, TextColumns):
        from dlops.kinds.text.suite import declared_text_columns

        return declared_text_columns(columns)
    names = [*columns.numeric, *columns.categorical, *columns.sensitive, columns.target]
    return list(dict.fromkeys(names))


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
        _expect(gxe.ExpectTableRowCountToBeBetween, "validate.min_rows", min_value=cfg.min_rows),
        _expect(
            gxe.ExpectCompoundColumnsToBeUnique,
            "validate.max_duplicate_fraction: rows repeated across all declared columns",
            column_list=declared,
            mostly=_fraction(1 - cfg.max_duplicate_fraction),
            ignore_row_if="never",
        ),
    ]
    for col in declared:
        exps.append(_expect(gxe.ExpectColumnToExist, "declared in params columns", column=col))
        exps.append(_null_check(gxe, col, df[col], columns, cfg))
        if col in columns.numeric:
            exps += _numeric_checks(gxe, col, df[col])
        if col in (*columns.categorical, *columns.sensitive, columns.target):
            exps += _category_check(gxe, col, df[col], columns, name)
    exps += _balance_checks(gxe, columns.target, df[columns.target], cfg, name)

    meta = {"dlops": {"reference_rows": len(df), "drafted_by": "dlops expectations init", "task": name}}
    suite = gx.ExpectationSuite(name=name, expectations=exps, meta=meta)
    return _without_ids(suite.to_json_dict())


def _expect(cls: Any, why: str, severity: str = CRITICAL, **kwargs: Any) -> Any:
    """A GE expectation carrying its severity and, in meta, the reason a reviewer should keep it."""
    return cls(**kwargs, severity=severity, meta={"why": why})


def _null_check(gxe: Any, col: str, series: pd.Series, columns: ColumnRoles, cfg: ValidateConfig) -> Any:
    null_rate = float(series.isna().mean())
    if col == columns.target or (col in columns.sensitive and null_rate == 0.0):
        mostly, why = 1.0, "labels and sensitive attributes may not be missing"
    else:  # a sensitive column that is already incomplete in the reference is treated like a feature
        mostly = _fraction(1 - max(cfg.max_null_fraction, 2 * null_rate))
        why = f"validate.max_null_fraction, or twice the reference rate ({null_rate:.2%})"
    return _expect(gxe.ExpectColumnValuesToNotBeNull, why, column=col, mostly=mostly)


def _numeric_checks(gxe: Any, col: str, series: pd.Series) -> list[Any]:
    checks = [
        _expect(
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
        _expect(between, why, column=col, min_value=bounds[0], max_value=bounds[1], mostly=RANGE_MOSTLY)
    )
    return checks


def _category_check(gxe: Any, col: str, series: pd.Series, columns: ColumnRoles, name: str) -> list[Any]:
    values = _distinct(series)
    if len(values) > MAX_SET_SIZE:
        log.warning("draft %s: %r has %d distinct values; no category set drafted", name, col, len(values))
        return []
    if col in columns.sensitive or col == columns.target:
        why, severity = "a new group or label breaks fairness reports and label encoding", CRITICAL
        return [_expect(gxe.ExpectColumnValuesToBeInSet, why, severity, column=col, value_set=values)]
    why = "a few rows of an unseen category map to 'unknown' downstream; more is a changed or broken feed"
    in_set = gxe.ExpectColumnValuesToBeInSet
    return [_expect(in_set, why, CRITICAL, column=col, value_set=values, mostly=RANGE_MOSTLY)]


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
        checks.append(_expect(in_set, why, column=target, value_set=[value], mostly=cfg.min_class_fraction))
    return checks


def _fraction(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 4)


def _distinct(series: pd.Series) -> list[Any]:
    values = {_plain(v) for v in series.dropna().unique()}
    return sorted(values, key=lambda v: (type(v).__name__, v))


def _without_ids(data: Any) -> Any:
    """Drop the random ids GE assigns, so a suite is a pure function of its content."""
    if isinstance(data, dict):
        return {k: _without_ids(v) for k, v in data.items() if k != "id"}
    if isinstance(data, list):
        return [_without_ids(v) for v in data]
    return data


# ------------------------------------------------------------------------------------------------- files
def save_suite(suite: dict[str, Any], path: Path | str) -> None:
    """Write the suite as sorted, indented JSON so a review diff shows exactly what changed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_without_ids(suite), indent=2, sort_keys=True, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def load_suite(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list) or "name" not in suite:
        raise ValueError(f"{path}: not an expectation suite (needs 'name' and a list 'expectations')")
    return suite


# -------------------------------------------------------------------------------------------- validate
def validate_table(
    df: pd.DataFrame,
    suite: dict[str, Any],
    columns: Columns,
    cfg: AnyValidateConfig,
    docs_dir: Path | None,
) -> dict[str, Any]:
    """Run the suite on df; return a JSON-able summary, identical across identical runs.

    `success` means no critical failure; "warning" and "info" failures count as `failed_warning`.
    Bad data never raises here (that is `raise_on_failure`'s job); a suite GE cannot read does.
    If docs_dir is given, GE Data Docs for this run replace whatever was there.
    """
    import great_expectations as gx

    suite = _covering(_normalized(suite), columns)
    _warn_on_drift(suite, cfg)
    staging = _staging_dir(docs_dir) if docs_dir is not None else None
    try:
        context = _ephemeral_context(staging)
        asset = context.data_sources.add_pandas("dlops").add_dataframe_asset(suite["name"])
        batch = asset.add_batch_definition_whole_dataframe("whole")
        gx_suite = context.suites.add(_gx_suite(gx, suite))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite['name']}-validation", data=batch, suite=gx_suite)
        )
        result = definition.run(batch_parameters={"dataframe": df}, result_format=RESULT_FORMAT)
        if staging is not None and docs_dir is not None:
            context.build_data_docs(site_names=["dlops"])
            _replace_dir(staging, docs_dir)
            staging = None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    keyed = [_summarize(r.to_json_dict(), df) for r in result.results]
    keyed.sort(key=lambda pair: (pair[1]["expectation"], pair[1]["column"] or "", pair[0]))
    rows = [row for _, row in keyed]
    failed = [r for r in rows if not r["success"]]
    failed_critical = sum(r["severity"] == CRITICAL for r in failed)
    return {
        "success": failed_critical == 0,
        "evaluated": len(rows),
        "failed_critical": failed_critical,
        "failed_warning": len(failed) - failed_critical,
        "row_count": len(df),
        "results": rows,
    }


def _normalized(suite: dict[str, Any]) -> dict[str, Any]:
    """A copy with GE's `severity` field set from `meta.severity` where only the latter was written."""
    suite = json.loads(json.dumps(suite))
    for exp in suite["expectations"]:
        meta_severity = (exp.get("meta") or {}).get("severity")
        if "severity" not in exp and meta_severity:
            exp["severity"] = meta_severity
    return _without_ids(suite)


def _covering(suite: dict[str, Any], columns: Columns) -> dict[str, Any]:
    """Add an existence check for each column params declare but the suite never mentions (a stale suite)."""
    mentioned = {(e.get("kwargs") or {}).get("column") for e in suite["expectations"]}
    for col in declared_columns(columns):
        if col not in mentioned:
            log.warning("suite %s has no expectations for declared column %r; redraft it", suite["name"], col)
            why = "declared in params columns but missing from the suite: redraft or extend it"
            exp = {"type": "expect_column_to_exist", "kwargs": {"column": col}, "severity": CRITICAL}
            suite["expectations"].append({**exp, "meta": {"why": why}})
    return suite


def _warn_on_drift(suite: dict[str, Any], cfg: AnyValidateConfig) -> None:
    for exp in suite["expectations"]:
        if exp.get("type") == "expect_table_row_count_to_be_between":
            drafted = (exp.get("kwargs") or {}).get("min_value")
            if drafted != cfg.min_rows:
                msg = "suite %s expects at least %s rows but params validate.min_rows is %d; the suite wins"
                log.warning(msg, suite["name"], drafted, cfg.min_rows)


def _gx_suite(gx: Any, suite: dict[str, Any]) -> Any:
    """The suite as GE objects, failing on any bad expectation (GE itself only logs and drops it)."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    built = []
    for i, exp in enumerate(suite["expectations"]):
        try:
            built.append(ExpectationConfiguration(**exp).to_domain_obj())
        except Exception as exc:  # unknown type, bad kwargs (pydantic), unknown keys (TypeError)
            where = f"expectation suite {suite['name']!r}, expectation #{i} ({exp.get('type')!r})"
            raise ValueError(f"{where} is not valid for GE: {exc}") from exc
    return gx.ExpectationSuite(**{**suite, "expectations": built})


def _ephemeral_context(docs_base: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_base is not None:
        sites["dlops"] = {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_base)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _staging_dir(docs_dir: Path) -> Path:
    docs_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{docs_dir.name}.", dir=docs_dir.parent))


def _replace_dir(new: Path, target: Path) -> None:
    """Swap a fully built folder into place, so readers never see a half-written one."""
    new.chmod(0o755)  # mkdtemp makes it owner-only; the docs are meant to be browsed
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------- summaries
def _summarize(result: dict[str, Any], df: pd.DataFrame) -> tuple[str, dict[str, Any]]:
    """(a sort key that tells apart same-type checks on one column, the summary row)."""
    config = result["expectation_config"]
    kind, kwargs = config["type"], config["kwargs"]
    res = result.get("result") or {}
    column = kwargs.get("column")
    absent = [c for c in (kwargs.get("column_list") or [column]) if c is not None and c not in df.columns]
    error = _exception_message(result.get("exception_info") or {})
    examples = _examples(res.get("partial_unexpected_list") or [])
    if kind == "expect_column_values_to_be_in_type_list" and not result["success"] and column in df:
        examples = _examples(_not_numeric(df[column]))  # the values that made a numeric column text
    percent = res.get("unexpected_percent")
    percent = None if percent is None else round(float(percent), 4)
    if absent:
        observed: Any = "column missing" if column else f"columns missing: {', '.join(absent)}"
    elif error:
        observed = f"error: {error}"
    elif "observed_value" in res:
        observed = _plain(res["observed_value"])
    elif "unexpected_count" in res:
        observed = {k: res[k] for k in ("element_count", "missing_count", "unexpected_count") if k in res}
    else:
        observed = None
    row = {
        "expectation": kind,
        "column": column,
        "severity": str(config.get("severity") or CRITICAL),
        "success": bool(result["success"]),
        "observed": observed,
        "unexpected_examples": examples,
        "unexpected_percent": percent,
        "why": (config.get("meta") or {}).get("why"),
        "kwargs": _plain({k: v for k, v in kwargs.items() if k not in ("column", "result_format")}),
    }
    unevaluated = bool(absent or error)
    row["detail"] = (
        "ok" if row["success"] else _detail(kind, kwargs, observed, percent, examples, unevaluated)
    )
    return json.dumps(_plain(kwargs), sort_keys=True), row


def _not_numeric(series: pd.Series) -> list[Any]:
    values = series.dropna()
    return values[pd.to_numeric(values, errors="coerce").isna()].head(50).tolist()


def _exception_message(info: dict[str, Any]) -> str | None:
    """GE reports either one exception or one per failing metric; keep the first line of the first."""
    entries = [info] if "raised_exception" in info else [info[k] for k in sorted(info)]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("exception_message"):
            return str(entry["exception_message"]).strip().splitlines()[0][:200]
    return None


def _examples(values: list[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for value in values:
        # infinity is JSON-safe as text; _plain would turn it into None, which reads as "missing"
        infinite = isinstance(value, float) and math.isinf(value)
        plain = str(value) if infinite else _plain(value)
        seen.setdefault(json.dumps(plain, sort_keys=True), plain)
        if len(seen) == EXAMPLES:
            break
    return list(seen.values())


def _detail(
    kind: str,
    kwargs: dict[str, Any],
    observed: Any,
    percent: float | None,
    examples: list[Any],
    unevaluated: bool,
) -> str:
    """One line saying what was wrong, for the error message and the log."""
    if unevaluated:
        return str(observed)
    if percent is None:
        sample = f", e.g. {', '.join(_fmt(v) for v in examples)}" if examples else ""
        return f"observed {_fmt(observed)}, expected {_expected(kwargs)}{sample}"
    low, high = _fmt(kwargs.get("min_value")), _fmt(kwargs.get("max_value"))
    what = {
        "expect_column_values_to_not_be_null": "missing",
        "expect_column_values_to_be_between": f"outside [{low}, {high}]",
        "expect_column_values_to_be_in_set": f"not in {_fmt(kwargs.get('value_set'))}",
        "expect_compound_columns_to_be_unique": "of rows duplicated (copies leak across train/val/test)",
    }.get(kind, "unexpected")
    text = f"{percent:.1f}% {what}"
    mostly = kwargs.get("mostly")
    # a class share (validate.min_class_fraction is at most 0.5; a category's tolerance is near 1)
    if kind == "expect_column_values_to_be_in_set" and mostly is not None and mostly <= 0.5:
        share = f"only {100 - percent:.1f}% in {_fmt(kwargs.get('value_set'))}"
        return f"{share} (at least {100 * mostly:.1f}% required)"
    if mostly is not None and mostly < 1:
        text += f" (at most {100 * (1 - mostly):.1f}% allowed)"
    if examples and kind != "expect_column_values_to_not_be_null":
        shown = examples[:1] if isinstance(examples[0], dict) else examples  # whole rows are long
        text += ", e.g. " + ", ".join(_fmt(v) for v in shown)
    return text


def _expected(kwargs: dict[str, Any]) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if kwargs.get("type_list") == NUMERIC_TYPES:
        return "a numeric dtype"
    if low is not None and high is not None:
        return f"between {_fmt(low)} and {_fmt(high)}"
    if low is not None or high is not None:
        return f"at least {_fmt(low)}" if low is not None else f"at most {_fmt(high)}"
    shown = {k: v for k, v in kwargs.items() if k not in ("column", "column_list", "result_format")}
    return _fmt(shown)


def _fmt(value: Any, limit: int = 120) -> str:
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(_fmt(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    """JSON-safe plain Python: numpy scalars unwrapped, NaN/inf as None, unknown objects as str."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


# ------------------------------------------------------------------------------------------------ gate
def raise_on_failure(summary: dict[str, Any], source: str) -> None:
    """Log failed warnings; raise DataValidationError listing every failed critical expectation."""
    failed = [r for r in summary["results"] if not r["success"]]
    for row in failed:
        if row["severity"] != CRITICAL:
            log.warning("%s: %s %s", source, row["severity"], _line(row))
    critical = [r for r in failed if r["severity"] == CRITICAL]
    if critical:
        noun = "expectation" if len(critical) == 1 else "expectations"
        lines = "\n".join(f"  - {_line(r)}" for r in critical)
        raise DataValidationError(f"{source} failed {len(critical)} critical {noun}:\n{lines}", critical)


def _line(row: dict[str, Any]) -> str:
    where = f" [column {row['column']!r}]" if row["column"] is not None else ""
    return f"{row['expectation']}{where}: {row['detail']}"
