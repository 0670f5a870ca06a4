"""Runnable copies of the project in a temporary directory, for tests and benchmarks (no pytest here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def make_project(dest: Path, params: dict[str, Any], *, dvc: bool = True, remote: bool = True) -> Path:
    """A runnable copy of the project (code, DAG, suites) with the given params, committed to a new git
    repository; with `dvc`, an initialised DVC project, and with `remote`, a local DVC remote."""
    for name in ("src", "pipelines", "expectations"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, dest / name)
    (dest / "data" / "batches").mkdir(parents=True)
    shutil.copy(REPO / "data" / "batches" / "README.md", dest / "data" / "batches" / "README.md")
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_dag(dest)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    if dvc:
        subprocess.run([bin_path("dvc"), "init", "-q"], cwd=dest, check=True)
        subprocess.run([bin_path("dvc"), "config", "core.analytics", "false"], cwd=dest, check=True)
    if dvc and remote:
        subprocess.run(
            [bin_path("dvc"), "remote", "add", "-d", "local", str(dest / ".dvc-storage")],
            cwd=dest,
            check=True,
            capture_output=True,
        )
    git_commit(dest, "project")
    return dest


def write_dag(root: Path) -> None:
    """dag.yaml for the project's params.yaml (what `dlops dag` writes; dvc.yaml reads it)."""
    from dlops import dag
    from dlops.params import load_params, paths

    p = paths(root)
    dag.write(load_params(p.params), p)


def git_commit(root: Path, message: str) -> None:
    """Commit everything in `root` (lineage tags and `dvc exp run` need a commit)."""
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=dlops-tests",
            "-c",
            "user.email=tests@dlops.invalid",
            "commit",
            "-qm",
            message,
        ],
        cwd=root,
        check=True,
    )


def bin_path(name: str) -> str:
    """A command of the interpreter's virtualenv."""
    return str(Path(sys.executable).with_name(name))


def uncovered_imports(root: Path, records: Path) -> dict[str, list[str]]:
    """For each stage a `dvc repro` ran with DLOPS_RECORD_IMPORTS=records, the dlops modules it imported
    that none of its deps in dvc.lock covers (a file, or a folder above it): code DVC does not watch."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    missing: dict[str, list[str]] = {}
    for record in sorted(records.glob("*.json")):
        stage = record.stem
        if stage not in lock:
            continue  # a command no stage runs (e.g. `dlops dag`)
        deps = [d["path"].rstrip("/") for d in lock[stage].get("deps", [])]
        modules = yaml.safe_load(record.read_text())
        gaps = [m for m in modules if not any(m == d or m.startswith(d + "/") for d in deps)]
        if gaps:
            missing[stage] = gaps
    return missing
