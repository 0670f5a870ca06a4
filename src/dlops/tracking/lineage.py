"""Where a model comes from, as run tags: git commit, DVC versions of the raw and processed data, the
accepted batches, the params hash, the pipeline and Prefect run ids, and library versions.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path


def lineage_tags(root: Path, task: str, params_digest: str) -> dict[str, str]:
    """Where a model comes from: code commit, data version, params hash, pipeline run, library versions."""
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    tags = {
        "git.commit": commit or "unknown",
        "git.dirty": "unknown" if status is None else str(bool(_edited(root, status))).lower(),
        "data.version": _dvc_out_md5(root, f"ingest@{task}", f"data/raw/{task}.parquet"),
        "data.processed": _dvc_out_md5(root, f"preprocess@{task}", f"data/processed/{task}"),
        "data.batches": _accepted_batches(root, task),
        "params.hash": params_digest,
        "pipeline.run_id": os.environ.get("DLOPS_PIPELINE_RUN_ID", "manual"),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "mlflow": package_version("mlflow"),
    }
    if flow_run := os.environ.get("PREFECT__FLOW_RUN_ID"):
        tags["prefect.flow_run_id"] = flow_run
    return tags


@functools.cache
def source_tags(root: Path | None) -> dict[str, str]:
    """MLflow's own source tags, which its UI shows as a run's source and git commit: the `dlops`
    command that made the run, and the checkout's commit when `root` is a git work tree."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("dlops", "__main__.py"):  # the console script or `python -m dlops`
        program = " ".join(["dlops", *sys.argv[1:2]])
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": program}
    if root is not None and (commit := _git(root, "rev-parse", "HEAD")):
        tags["mlflow.source.git.commit"] = commit
    return tags


def _edited(root: Path, status: str) -> list[str]:
    """The changed tracked files of `git status --porcelain` that are not the pipeline's own writing:
    dvc.lock, dag.yaml and the outputs dvc.lock records (the git-tracked reports) change with every
    run, so a fresh clone's first run is not "dirty" for them; code, params and suites are."""
    import yaml

    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
        written = {str(o["path"]) for e in (lock.get("stages") or {}).values() for o in e.get("outs") or []}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        written = set()
    written |= {"dvc.lock", "dag.yaml"}
    lines = [line for line in status.splitlines() if line.strip()]  # "XY path", "R  old -> new"
    paths = [line.split(None, 1)[-1].split(" -> ")[-1].strip('"') for line in lines]
    return [path for path in paths if path not in written]


def _accepted_batches(root: Path, task: str) -> str:
    """The ids of the batches appended to the task's data (data/batches/<task>.json), oldest first."""
    try:
        manifest = json.loads((root / "data" / "batches" / f"{task}.json").read_text(encoding="utf-8"))
        ids = [str(entry["id"]) for entry in manifest["batches"]]
    except (OSError, ValueError, KeyError, TypeError):
        return "none"
    text = ",".join(ids) or "none"
    return text if len(text) <= 4000 else f"{len(ids)} batches, last {ids[-1]}"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _dvc_out_md5(root: Path, stage: str, out_path: str) -> str:
    import yaml

    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
        outs = lock["stages"][stage]["outs"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "untracked"
    for out in outs or []:
        if isinstance(out, dict) and out.get("path") == out_path and out.get("md5"):
            return str(out["md5"])
    return "untracked"


def package_version(dist: str) -> str:
    """The installed version of a distribution, or "absent"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"
