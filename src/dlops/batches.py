"""New batches of data for a task: load one, check it against the committed suite, then either append it
to the task's versioned dataset or quarantine it.

A batch is described like the task's own source (`tasks.<task>.ingest`): a file (`path`), a URL pinned
by `sha256`, or, for the built-in generators, the generator with a new `seed` (by default derived from
the batch date, so "next Monday's data" is reproducible) and optional `shift`. `{date}` in a path is
replaced by the batch date.

Accepted batches live in `data/batches/<task>/<id>.parquet` (raw-table rows, tracked with `dvc add`, so
every state is a DVC version that `dvc push` sends to the remote) and are listed, in order, in the
manifest `data/batches/<task>.json` (small, in git, a dependency of `ingest` and `preprocess`). The
ingest stage appends them to the task's source rows; the preprocess stage splits each block on its own
(see `blocks`), so rows keep their split when the dataset grows. A rejected batch goes to
`data/quarantine/<task>/<id>/` with the reason, and the dataset is not touched.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from dlops.errors import Quarantined
from dlops.files import file_sha256, write_json, write_parquet, write_text
from dlops.params import ConfigError, Paths, TaskConfig, batch_source

BASE = "base"


class BatchRejected(Quarantined, ValueError):
    """A batch failed its checks; it was quarantined and the dataset is unchanged."""

    def __init__(self, message: str, quarantine: Path) -> None:
        super().__init__(message)
        self.quarantine = quarantine


@dataclass(frozen=True)
class Batch:
    task: str
    id: str
    date: str
    spec: dict[str, Any]
    frame: pd.DataFrame


# ------------------------------------------------------------------------------------------------ loading
def batch_date(date: str | None) -> str:
    """An ISO date (YYYY-MM-DD); today (UTC) when not given."""
    if date is None:
        return datetime.now(UTC).date().isoformat()
    try:
        return datetime.strptime(date, "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise ConfigError(f"batch date {date!r} is not YYYY-MM-DD") from None


def load_batch(task: str, task_cfg: TaskConfig, spec: dict[str, Any], date: str | None, root: Path) -> Batch:
    """Read a batch into the task's raw-table layout (the loaders of `ingest`, so every check applies)."""
    from dlops.kinds import kind_of

    day = batch_date(date)
    source = batch_source(task, task_cfg, spec, day)
    frame = kind_of(task_cfg).load(_for_batch(task_cfg, source), root)
    if frame.empty:
        raise ValueError(f"batch for task {task!r} ({_where(source)}) has no rows")
    digest = _frame_sha256(frame)
    batch_id = f"{day}-{digest[:8]}"
    frame = kind_of(task_cfg).tag_batch_rows(frame, batch_id)
    return Batch(task, batch_id, day, source.model_dump(mode="json"), frame.reset_index(drop=True))


def _for_batch(task_cfg: TaskConfig, source: Any) -> TaskConfig:
    """The task read from a batch's source: a batch has no official split of its own (its rows are split
    by the fractions), so a `preprocess.split.column` is not looked for in it."""
    update: dict[str, Any] = {"ingest": source}
    preprocess = getattr(task_cfg, "preprocess", None)
    split = getattr(preprocess, "split", None)
    if preprocess is not None and split is not None and split.column:
        given_split_dropped = split.model_copy(update={"column": None})
        update["preprocess"] = preprocess.model_copy(update={"split": given_split_dropped})
    return task_cfg.model_copy(update=update)


def _where(source: Any) -> str:
    return str(getattr(source, "url", None) or getattr(source, "path", None) or source.source)


def _frame_sha256(frame: pd.DataFrame) -> str:
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


# --------------------------------------------------------------------------------------------- checking
def check_batch(batch: Batch, task_cfg: TaskConfig, p: Paths, min_rows: int) -> dict[str, Any]:
    """The committed suite on the batch alone (its row-count expectation is for the whole dataset, so
    `retrain.min_batch_rows` replaces it); a summary like the validate stage's."""
    from dlops.data.validation import load_suite
    from dlops.kinds import kind_of

    suite = load_suite(p.suite(task_cfg))
    suite["expectations"] = [  # what holds for the whole dataset only (row count, series length) is skipped
        e
        for e in suite["expectations"]
        if e.get("type") != "expect_table_row_count_to_be_between"
        and not (e.get("meta") or {}).get("whole_dataset")
    ]
    summary = kind_of(task_cfg).validate(batch.frame, suite, task_cfg, None)
    accepted = lambda: _accepted_data(p, batch.task)  # noqa: E731 - read only by kinds that need it
    for problem in kind_of(task_cfg).batch_problems(task_cfg, accepted, batch.frame):
        _fail(summary, "batch_continues_data", problem)
    if len(batch.frame) < min_rows:
        _fail(summary, "batch_row_count", f"{len(batch.frame)} rows, retrain.min_batch_rows is {min_rows}")
    return summary


def _fail(summary: dict[str, Any], check: str, detail: str) -> None:
    """Add one failed critical check of the batch as a whole to a validation summary."""
    from dlops.data.validation import recounted

    row = {"expectation": check, "column": None, "success": False, "severity": "critical", "detail": detail}
    summary["results"].append(row)
    summary.update(recounted(summary))


def _accepted_data(p: Paths, task: str) -> pd.DataFrame:
    """The task's data so far: the raw table of the last ingest and every batch accepted since."""
    frames = [pd.read_parquet(p.raw(task))] if p.raw(task).is_file() else []
    frames += accepted_frames(p, task)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ------------------------------------------------------------------------------------ manifest and DVC
def manifest_path(p: Paths, task: str) -> Path:
    return p.root / "data" / "batches" / f"{task}.json"


def batch_dir(p: Paths, task: str) -> Path:
    return p.root / "data" / "batches" / task


def quarantine_dir(p: Paths, task: str, batch_id: str) -> Path:
    return p.root / "data" / "quarantine" / task / batch_id


def read_manifest(p: Paths, task: str) -> dict[str, Any]:
    path = manifest_path(p, task)
    if not path.is_file():
        return {"task": task, "batches": []}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable batch manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("batches"), list):
        raise ValueError(f"{path}: a batch manifest needs a 'batches' list")
    return manifest


def accepted_frames(p: Paths, task: str) -> list[pd.DataFrame]:
    """The accepted batches of a task, in manifest order, each checked against its recorded sha256."""
    frames = []
    for entry in read_manifest(p, task)["batches"]:
        file = batch_dir(p, task) / f"{entry['id']}.parquet"
        rel = file.relative_to(p.root)
        if not file.is_file():
            raise FileNotFoundError(
                f"{rel}: batch {entry['id']} is in {manifest_path(p, task).relative_to(p.root)} but not "
                f"in the workspace; run `dvc pull data/batches/{task}.dvc` (or `dvc checkout`)"
            )
        if file_sha256(file) != entry["sha256"]:
            raise ValueError(f"{rel}: content differs from the sha256 the manifest recorded; restore it")
        frames.append(pd.read_parquet(file))
    return frames


def blocks(p: Paths, task: str, total_rows: int) -> list[tuple[str, int]]:
    """(block id, rows) in raw-table order: the source's rows, then each accepted batch."""
    entries = read_manifest(p, task)["batches"]
    base = total_rows - sum(int(e["rows"]) for e in entries)
    if base < 0:
        raise ValueError(
            f"data/raw/{task}.parquet has {total_rows} rows, fewer than its batches in "
            f"{manifest_path(p, task).relative_to(p.root)}; rerun `dlops ingest {task}`"
        )
    return [(BASE, base), *((str(e["id"]), int(e["rows"])) for e in entries)]


def append(batch: Batch, p: Paths) -> dict[str, Any]:
    """Add an accepted batch to the dataset: its file, a manifest entry, and a new DVC version of the
    batch folder (`dvc add`). On any failure the manifest and folder are put back as they were."""
    manifest = read_manifest(p, batch.task)
    if any(e["id"] == batch.id for e in manifest["batches"]):
        raise ValueError(f"batch {batch.id} is already in {manifest_path(p, batch.task).relative_to(p.root)}")
    file = batch_dir(p, batch.task) / f"{batch.id}.parquet"
    file.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(batch.frame, file)
    entry = {
        "id": batch.id,
        "date": batch.date,
        "rows": len(batch.frame),
        "sha256": file_sha256(file),
        "spec": batch.spec,
        "accepted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = manifest_path(p, batch.task)
    before = path.read_bytes() if path.is_file() else None
    try:
        write_json(path, {**manifest, "task": batch.task, "batches": [*manifest["batches"], entry]})
        dvc_add(p.root, batch_dir(p, batch.task))
    except BaseException:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)
        file.unlink(missing_ok=True)
        raise
    return entry


def quarantine(
    batch: Batch | None, spec: dict[str, Any], reason: dict[str, Any], p: Paths, task: str
) -> Path:
    """Keep a rejected batch and why, under data/quarantine/<task>/<id>/ (git- and DVC-ignored)."""
    batch_id = batch.id if batch is not None else f"{reason.get('date', 'undated')}-unreadable"
    out = quarantine_dir(p, task, batch_id)
    out.mkdir(parents=True, exist_ok=True)
    if batch is not None:
        write_parquet(batch.frame, out / "batch.parquet")
    from dlops.redact import redact_mapping

    report = {"task": task, "batch": batch_id, "spec": redact_mapping(spec), **reason}  # no URL password
    write_text(out / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    return out


def dvc_add(root: Path, target: Path) -> None:
    """`dvc add <target>`: the folder's new state becomes a DVC version (cached, pushable)."""
    from dlops.workspace import dvc_executable

    done = subprocess.run(
        [dvc_executable(), "add", str(target.relative_to(root))], cwd=root, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"dvc add {target.relative_to(root)} failed: {(done.stderr or done.stdout).strip()}"
        )
