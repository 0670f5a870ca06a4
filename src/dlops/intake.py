"""New data arriving: `dlops batch add` (check, then append or quarantine) and `dlops drift` (compare a
batch with the data the current models were trained on). Plain functions shared by the CLI and the
retraining flows in pipelines/.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from dlops.batches import Batch, BatchRejected, append, batch_date, check_batch, load_batch, quarantine
from dlops.files import write_json, write_text
from dlops.params import Params, Paths, TaskConfig, load_params, paths

log = logging.getLogger(__name__)


def _context(root: Path | None) -> tuple[Params, Paths]:
    p = paths(root)
    return load_params(p.params), p


def scheduled_spec(params: Params, task: str) -> dict[str, Any]:
    """The batch a scheduled run takes for a task (`retrain.batches.<task>`)."""
    if task not in params.retrain.batches:
        raise KeyError(
            f"retrain.batches has no entry for task {task!r}; give the batch (--path/--spec) or add one"
        )
    return dict(params.retrain.batches[task])


# ---------------------------------------------------------------------------------------------- batches
def add_batch(
    task: str, spec: dict[str, Any], date: str | None = None, root: Path | None = None
) -> dict[str, Any]:
    """Load a batch, check it against the committed suite, and append it (a new DVC version of the
    task's batches) or quarantine it. Raises BatchRejected after quarantining; the dataset is untouched."""
    from dlops.workspace import workspace_lock

    params, p = _context(root)
    task_cfg = params.task(task)
    day = batch_date(date)
    with workspace_lock(p.root, params.retrain.lock_timeout_s, holder=f"dlops batch add {task}"):
        return _add_batch(task, task_cfg, spec, day, params, p)


def _add_batch(
    task: str, task_cfg: TaskConfig, spec: dict[str, Any], day: str, params: Params, p: Paths
) -> dict[str, Any]:
    try:
        batch = load_batch(task, task_cfg, spec, day, p.root)
    except Exception as exc:  # unreadable: keep the spec and the reason, nothing else to keep
        where = quarantine(None, spec, {"date": day, "stage": "load", "error": str(exc)}, p, task)
        raise BatchRejected(
            f"batch for {task!r} cannot be read: {exc}; quarantined in {_rel(where, p)}", where
        ) from exc
    from dlops.batches import read_manifest

    if any(e["id"] == batch.id for e in read_manifest(p, task)["batches"]):  # a rerun of the same week
        return {"task": task, "outcome": "already accepted", "id": batch.id, "rows": len(batch.frame)}
    summary = check_batch(batch, task_cfg, p, params.retrain.min_batch_rows)
    if not summary["success"]:
        failures = [_failure_line(row) for row in summary["results"] if not row["success"]]
        failures = [line for line in failures if line][:8]
        where = quarantine(
            batch, batch.spec, {"date": day, "stage": "validate", "validation": summary}, p, task
        )
        raise BatchRejected(
            f"batch {batch.id} for {task!r} failed {summary['failed_critical']} critical expectation(s) of "
            f"{_rel(p.suite(task_cfg), p)}: {'; '.join(failures)}; quarantined in {_rel(where, p)}",
            where,
        )
    entry = append(batch, p)
    log.info("batch %s: %d rows accepted into data/batches/%s", batch.id, entry["rows"], task)
    return {"task": task, "outcome": "accepted", **entry, "warnings": summary["failed_warning"]}


def _failure_line(row: dict[str, Any]) -> str:
    column = f" on {row['column']!r}" if row.get("column") else ""
    detail = row.get("detail") or row.get("observed") or ""
    return f"{row['expectation']}{column} {detail}".strip()


def _rel(path: Path, p: Paths) -> str:
    try:
        return str(path.relative_to(p.root))
    except ValueError:
        return str(path)


def list_batches(task: str, root: Path | None = None) -> list[dict[str, Any]]:
    from dlops.batches import read_manifest

    params, p = _context(root)
    params.task(task)
    return list(read_manifest(p, task)["batches"])


# ------------------------------------------------------------------------------------------------ drift
def check_drift(
    task: str, spec: dict[str, Any], date: str | None = None, root: Path | None = None, log_run: bool = True
) -> dict[str, Any]:
    """Compare a batch with the task's current dataset (data/raw/<task>.parquet, what today's models were
    trained on): write reports/drift/<task>/<batch>.{json,md} and, unless told not to, an MLflow run."""
    import pandas as pd

    from dlops.kinds import kind_of

    params, p = _context(root)
    task_cfg = params.task(task)
    if not p.raw(task).is_file():
        raise FileNotFoundError(
            f"{_rel(p.raw(task), p)}: no reference data for the drift check; run `dvc repro` (or `dvc pull`)"
        )
    batch = load_batch(task, task_cfg, spec, date, p.root)
    reference = pd.read_parquet(p.raw(task))
    report = drift_report(task_cfg, reference, batch, p, params.retrain.drift.psi_threshold)
    report |= {"task": task, "batch": batch.id, "date": batch.date, "spec": batch.spec}
    summary = kind_of(task_cfg).drift_summary(report)
    markdown = f"## Drift check: task {task}, batch {batch.id}\n\n" + summary
    out = p.root / "reports" / "drift" / task
    write_json(out / f"{batch.id}.json", report)
    write_text(out / f"{batch.id}.md", markdown)
    report["markdown"] = markdown
    if log_run:
        report["mlflow_run_id"] = log_drift(p, params, report, markdown)
    return report


def drift_report(
    task_cfg: TaskConfig, reference: Any, batch: Batch, p: Paths, threshold: float
) -> dict[str, Any]:
    from dlops.kinds import kind_of

    return kind_of(task_cfg).drift(task_cfg, reference, batch.frame, p, batch.task, threshold)


def log_drift(p: Paths, params: Params, report: dict[str, Any], markdown: str) -> str:
    """One MLflow run per drift check in the `<experiment>-monitoring` experiment: the flag and the
    largest statistics as metrics, the report as JSON and Markdown."""
    from dlops import tracking

    monitoring = params.mlflow.model_copy(update={"experiment": f"{params.mlflow.experiment}-monitoring"})
    tracking.configure(p.root, monitoring)
    tags = {
        "dlops.kind": "drift",
        "dlops.task": report["task"],
        "batch.id": report["batch"],
        "drift.detected": str(report["drifted"]).lower(),
        "mlflow.note.content": markdown[:4000],
    }
    numbers = {"drift/detected": float(report["drifted"])}
    for key in ("max_psi", "length_psi", "oov_rise", "mean_psi", "std_psi"):
        if isinstance(report.get(key), int | float):
            numbers[f"drift/{key}"] = float(report[key])
    for row in report.get("columns", []):
        if isinstance(row.get("psi"), int | float):
            numbers[f"drift/psi/{row['column']}"] = float(row["psi"])
    if report.get("label") and isinstance(report["label"].get("psi"), int | float):
        numbers["drift/label_psi"] = float(report["label"]["psi"])
    plain = json.dumps({k: v for k, v in report.items() if k != "markdown"}, indent=2, default=str)
    run_name = f"drift {report['task']} {report['batch']}"
    return tracking.log_report_run(run_name, tags, numbers, {"drift.json": plain, "drift.md": markdown})


__all__ = ["BatchRejected", "add_batch", "check_drift", "list_batches", "scheduled_spec"]
