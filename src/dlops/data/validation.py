"""Great Expectations suites of every kind: run a committed suite on a raw table, then gate on it.

As in TFDV, each kind drafts a suite from a reference table (`dlops.kinds.<kind>.suite`, with the
helpers `expect`, `fraction` and `without_ids` from here); it is committed under expectations/ and
reviewed like code. `run_suite` runs it and returns a deterministic summary (a DVC metric),
`name_files` adds the files or lines that broke each failed expectation, and `raise_on_failure` is
the gate. Every check is a stock GE 1.x expectation, so the JSON loads with
`gx.ExpectationSuite(**suite)` and renders in Data Docs.
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
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dlops.errors import BadInput
from dlops.files import write_json

log = logging.getLogger(__name__)

CRITICAL, WARNING = "critical", "warning"
CONTAINERS = (list, dict, set, tuple, np.ndarray)  # cell values GE cannot compare or hash
EXAMPLES = 5
SHOWN_FILES = 5
# Numeric dtypes as GE's pandas type check names them (numpy names, then pandas nullable dtypes).
NUMERIC_TYPES = [
    *(f"{sign}{bits}" for sign in ("int", "uint") for bits in (8, 16, 32, 64)),
    "float16", "float32", "float64",
    *(f"{sign}{bits}Dtype" for sign in ("Int", "UInt") for bits in (8, 16, 32, 64)),
    "Float32Dtype", "Float64Dtype",
]  # fmt: skip
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


class ValidateParams(Protocol):
    """What the runner reads of a task's `validate` params (any kind's)."""

    @property
    def min_rows(self) -> int: ...


class DataValidationError(BadInput, ValueError):
    """A table failed critical expectations; `failures` holds their summary rows."""

    def __init__(self, message: str, failures: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


def expect(cls: Any, why: str, severity: str = CRITICAL, whole_dataset: bool = False, **kwargs: Any) -> Any:
    """A GE expectation carrying its severity and, in meta, the reason a reviewer should keep it;
    `whole_dataset`: it holds for the dataset, not for a new batch alone (batch checks skip it)."""
    meta = {"why": why, **({"whole_dataset": True} if whole_dataset else {})}
    return cls(**kwargs, severity=severity, meta=meta)


def fraction(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 4)


def without_ids(data: Any) -> Any:
    """Drop the random ids GE assigns, so a suite is a pure function of its content."""
    if isinstance(data, dict):
        return {k: without_ids(v) for k, v in data.items() if k != "id"}
    if isinstance(data, list):
        return [without_ids(v) for v in data]
    return data


# ------------------------------------------------------------------------------------------------- files
def save_suite(suite: dict[str, Any], path: Path | str) -> None:
    """Write the suite as sorted, indented JSON so a review diff shows exactly what changed."""
    write_json(Path(path), without_ids(suite))


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
def run_suite(
    df: pd.DataFrame,
    suite: dict[str, Any],
    declared: list[str],
    cfg: ValidateParams,
    docs_dir: Path | None,
) -> dict[str, Any]:
    """Run the suite on df; return a JSON-able summary, identical across identical runs.

    `declared` are the columns params declare (the kind's `declared_columns`); one the suite never
    mentions gets an existence check, so a stale suite cannot skip it.

    `success` means no critical failure; "warning" and "info" failures count as `failed_warning`.
    Bad data never raises here (that is `raise_on_failure`'s job); a suite GE cannot read does.
    If docs_dir is given, GE Data Docs for this run replace whatever was there.
    """
    import great_expectations as gx

    suite = _covering(_normalized(suite), declared)
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
        found = _detectors(cfg)
        if staging is not None and docs_dir is not None:
            _mask_stored_results(context, found)
            context.build_data_docs(site_names=["dlops"])
            _replace_dir(staging, docs_dir)
            staging = None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    keyed = [_summarize(r.to_json_dict(), df, found) for r in result.results]
    keyed.sort(key=lambda pair: (pair[1]["expectation"], pair[1]["column"] or "", pair[0]))
    return recounted({"row_count": len(df), "results": [row for _, row in keyed]})


def recounted(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with `success`, `evaluated`, `failed_critical` and `failed_warning` counted from its
    `results` rows (`success`: no critical row failed; a failed "warning" or "info" row is a warning)."""
    rows = summary["results"]
    failed = [r for r in rows if not r["success"]]
    failed_critical = sum(r["severity"] == CRITICAL for r in failed)
    counts = {
        "success": failed_critical == 0,
        "evaluated": len(rows),
        "failed_critical": failed_critical,
        "failed_warning": len(failed) - failed_critical,
    }
    return {**summary, **counts}


def _detectors(cfg: ValidateParams) -> tuple[Any, ...]:
    """The PII detectors that mask the values a summary shows (with the task's declared national IDs)."""
    from dlops.privacy.pii import detectors

    pii = getattr(cfg, "pii", None)
    return detectors(pii.national_ids if pii is not None else None)


def _normalized(suite: dict[str, Any]) -> dict[str, Any]:
    """A copy with GE's `severity` field set from `meta.severity` where only the latter was written."""
    suite = json.loads(json.dumps(suite))
    for exp in suite["expectations"]:
        meta_severity = (exp.get("meta") or {}).get("severity")
        if "severity" not in exp and meta_severity:
            exp["severity"] = meta_severity
    return without_ids(suite)


def _covering(suite: dict[str, Any], declared: list[str]) -> dict[str, Any]:
    """Add an existence check for each column params declare but the suite never mentions (a stale suite)."""
    mentioned = {(e.get("kwargs") or {}).get("column") for e in suite["expectations"]}
    for col in declared:
        if col not in mentioned:
            log.warning("suite %s has no expectations for declared column %r; redraft it", suite["name"], col)
            why = "declared in params columns but missing from the suite: redraft or extend it"
            exp = {"type": "expect_column_to_exist", "kwargs": {"column": col}, "severity": CRITICAL}
            suite["expectations"].append({**exp, "meta": {"why": why}})
    return suite


def _warn_on_drift(suite: dict[str, Any], cfg: ValidateParams) -> None:
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


def _mask_stored_results(context: Any, found: tuple[Any, ...]) -> None:
    """Data Docs show the stored results' unexpected values: mask the identifiers in them (`pii.mask`)."""
    store = context.validation_results_store
    for key in store.list_keys():
        stored = store.get(key)
        for expectation in stored.results:
            res = expectation.result or {}
            if "partial_unexpected_list" in res:
                res["partial_unexpected_list"] = masked(res["partial_unexpected_list"], found)
            if "partial_unexpected_counts" in res:
                counts = res["partial_unexpected_counts"]
                res["partial_unexpected_counts"] = [{**c, "value": masked(c["value"], found)} for c in counts]
            if "observed_value" in res:
                res["observed_value"] = masked(res["observed_value"], found)
        store.set(key, stored)


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
def _summarize(
    result: dict[str, Any], df: pd.DataFrame, found: tuple[Any, ...] = ()
) -> tuple[str, dict[str, Any]]:
    """(a sort key that tells apart same-type checks on one column, the summary row); the values it
    shows are masked by the PII detectors `found` (all built-in ones when none are given)."""
    config = result["expectation_config"]
    expectation_type, kwargs = config["type"], config["kwargs"]
    res = result.get("result") or {}
    column = kwargs.get("column")
    absent = [c for c in (kwargs.get("column_list") or [column]) if c is not None and c not in df.columns]
    error = _exception_message(result.get("exception_info") or {})
    examples = _examples(res.get("partial_unexpected_list") or [], found)
    if (
        expectation_type == "expect_column_values_to_be_in_type_list"
        and not result["success"]
        and column in df
    ):
        # the values that made a numeric column text
        examples = _examples(_not_numeric(df[column]), found)
    percent = res.get("unexpected_percent")
    percent = None if percent is None else round(float(percent), 4)
    if absent:
        observed: Any = "column missing" if column else f"columns missing: {', '.join(absent)}"
    elif error and (odd := _odd_columns(df, kwargs.get("column_list") or [column])):
        # GE could not evaluate it: say what the column holds, not GE's internal error
        held = "; ".join(f"column {c!r} holds {_value_kinds(df[c])}" for c in odd)
        observed = "not evaluated: " + masked(held, found)
    elif error:
        observed = f"error: {error}"
    elif "observed_value" in res:
        observed = masked(json_safe(res["observed_value"]), found)
    elif "unexpected_count" in res:
        observed = {k: res[k] for k in ("element_count", "missing_count", "unexpected_count") if k in res}
    else:
        observed = None
    row = {
        "expectation": expectation_type,
        "column": column,
        "severity": str(config.get("severity") or CRITICAL),
        "success": bool(result["success"]),
        "observed": observed,
        "unexpected_examples": examples,
        "unexpected_percent": percent,
        "why": (config.get("meta") or {}).get("why"),
        "kwargs": json_safe({k: v for k, v in kwargs.items() if k not in ("column", "result_format")}),
    }
    unevaluated = bool(absent or error)
    row["detail"] = (
        "ok"
        if row["success"]
        else _detail(expectation_type, kwargs, observed, percent, examples, unevaluated)
    )
    if not row["success"] and not unevaluated and column in df and _holds_containers(df[column]):
        held = masked(_value_kinds(df[column]), found)
        row["detail"] += f"; column {column!r} holds {held}, not single values"
    return json.dumps(json_safe(kwargs), sort_keys=True), row


def _holds_containers(series: pd.Series) -> bool:
    return bool(series.dtype == object and series.map(lambda v: isinstance(v, CONTAINERS)).any())


def _odd_columns(df: pd.DataFrame, names: list[Any]) -> list[str]:
    """Of `names`, the columns of df holding containers (lists, dicts, arrays), else all present."""
    present = [str(c) for c in names if c is not None and c in df.columns]
    odd = [c for c in present if _holds_containers(df[c])]
    return odd or present


def _value_kinds(series: pd.Series) -> str:
    """What the non-missing values of a column are, by Python type, with an example of the odd one:
    "str values (e.g. '1,234')", "list values (e.g. [1, 2]) and int values"."""
    values = [v for v in series.tolist() if not (isinstance(v, float) and v != v) and v is not None]
    by_type: dict[str, Any] = {}
    for value in values:  # a Parquet list column reads as arrays: call them lists, as the user wrote them
        name = type(value).__name__
        by_type.setdefault({"ndarray": "list", "tuple": "list"}.get(name, name), value)
    if not by_type:
        return "no values (all missing)"
    parts = [f"{name} values (e.g. {_fmt(example)[:60]})" for name, example in by_type.items()]
    return " and ".join(parts[:3])


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


def _examples(values: list[Any], found: tuple[Any, ...] = ()) -> list[Any]:
    """Up to five distinct values, JSON-safe, with any e-mail, card number, ... in them masked."""
    seen: dict[str, Any] = {}
    for value in values:
        # infinity is JSON-safe as text; json_safe would turn it into None, which reads as "missing"
        infinite = isinstance(value, float) and math.isinf(value)
        plain = masked(str(value) if infinite else json_safe(value), found)
        seen.setdefault(json.dumps(plain, sort_keys=True), plain)
        if len(seen) == EXAMPLES:
            break
    return list(seen.values())


def masked(value: Any, found: tuple[Any, ...] = ()) -> Any:
    """`value` (JSON-safe) with every identifier in its strings replaced by `<kind>` (`pii.mask`)."""
    from dlops.privacy.pii import mask

    if isinstance(value, str):
        return mask(value, found)
    if isinstance(value, list):
        return [masked(v, found) for v in value]
    if isinstance(value, dict):
        return {k: masked(v, found) for k, v in value.items()}
    return value


def _detail(
    expectation_type: str,
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
        "expect_column_values_to_be_unique": "duplicated (exact copies)",
    }.get(expectation_type, "unexpected")
    text = f"{percent:.1f}% {what}"
    mostly = kwargs.get("mostly")
    # a class share (validate.min_class_fraction is at most 0.5; a category's tolerance is near 1)
    if expectation_type == "expect_column_values_to_be_in_set" and mostly is not None and mostly <= 0.5:
        share = f"only {100 - percent:.1f}% in {_fmt(kwargs.get('value_set'))}"
        return f"{share} (at least {100 * mostly:.1f}% required)"
    if mostly is not None and mostly < 1:
        text += f" (at most {100 * (1 - mostly):.1f}% allowed)"
    if examples and expectation_type != "expect_column_values_to_not_be_null":
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


def json_safe(value: Any) -> Any:
    """JSON-safe plain Python: numpy scalars unwrapped, NaN/inf as None, unknown objects as str."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
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


def with_warnings(summary: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Log each warning about data the suite accepts but a person should look at (a constant column, NUL
    bytes in texts) and list them in the summary under `warnings` (absent when there are none)."""
    for warning in warnings:
        log.warning("validate: %s", warning)
    return {**summary, "warnings": warnings} if warnings else summary


# ---------------------------------------------------------------------------------------- offending rows
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
    col, kw, expectation_type = frame[row["column"]], row.get("kwargs") or {}, row["expectation"]
    if expectation_type == "expect_column_values_to_be_in_set" and (kw.get("mostly") or 1.0) >= 1.0:
        return ~col.isin(kw.get("value_set") or [])
    if expectation_type == "expect_column_values_to_be_between":
        low, high = kw.get("min_value"), kw.get("max_value")
        out = pd.Series(False, index=frame.index)
        if low is not None:
            out |= col < low
        if high is not None:
            out |= col > high
        return out
    if expectation_type == "expect_column_values_to_be_unique":
        return col.duplicated(keep=False)
    if expectation_type == "expect_column_values_to_not_be_null":
        return col.isna()
    if expectation_type == "expect_column_value_lengths_to_be_between":
        lengths = col.astype(str).str.len()
        low, high = kw.get("min_value"), kw.get("max_value")
        return (lengths < (low if low is not None else 0)) | (
            lengths > (high if high is not None else math.inf)
        )
    if expectation_type == "expect_column_values_to_not_match_regex" and kw.get("regex"):
        return col.astype(str).str.contains(kw["regex"], regex=True)
    return None


# ------------------------------------------------------------------------------------------------ gate
def drafted_params(validate_cfg: Any) -> dict[str, Any]:
    """The `validate` params a suite's limits are drafted from, kept in its meta (`dlops.validate`); the PII
    screen (`pii`) runs beside the suite, not in it."""
    return dict(validate_cfg.model_dump(mode="json", exclude={"suite", "draft_if_missing", "pii"}))


def params_disagreement(suite: dict[str, Any], validate_cfg: Any) -> list[str]:
    """`validate.<key>: params say X, the suite was drafted with Y` for each limit changed since the
    suite was drafted (none for a suite drafted before dlops kept that record)."""
    then = ((suite.get("meta") or {}).get("dlops") or {}).get("validate")
    if not isinstance(then, dict):
        return []
    now = drafted_params(validate_cfg)
    return [
        f"validate.{key}: params say {now[key]!r}, the suite was drafted with {then[key]!r}"
        for key in sorted(set(now) & set(then))
        if now[key] != then[key]
    ]


def limits_hint(summary: dict[str, Any], suite_path: str, task: str, changed: list[str]) -> str:
    """What to tell a user whose failed checks' limits come from params: the suite file holds them."""
    from_params = [
        r for r in summary["results"] if not r["success"] and "validate." in str(r.get("why") or "")
    ]
    if not from_params and not changed:
        return ""
    since = f" Changed since it was drafted: {'; '.join(changed)}." if changed else ""
    return (
        f"The limits are the committed suite's ({suite_path}), drafted from params `validate`; a change "
        f"to params reaches them only when the suite is re-drafted: `dlops expectations init {task} "
        f"--force` (then review and commit it), or edit the suite.{since}"
    )


def raise_on_failure(summary: dict[str, Any], source: str, hint: str = "") -> None:
    """Log failed warnings; raise DataValidationError listing every failed critical expectation (and the
    `hint`, when one is given)."""
    failed = [r for r in summary["results"] if not r["success"]]
    for row in failed:
        if row["severity"] != CRITICAL:
            log.warning("%s: %s %s", source, row["severity"], _line(row))
    critical = [r for r in failed if r["severity"] == CRITICAL]
    if critical:
        noun = "expectation" if len(critical) == 1 else "expectations"
        lines = "\n".join(f"  - {_line(r)}" for r in critical)
        tail = f"\n{hint}" if hint else ""
        raise DataValidationError(
            f"{source} failed {len(critical)} critical {noun}:\n{lines}{tail}", critical
        )


def _line(row: dict[str, Any]) -> str:
    where = f" [column {row['column']!r}]" if row["column"] is not None else ""
    return f"{row['expectation']}{where}: {row['detail']}"
