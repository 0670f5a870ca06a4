"""After a failed `dlops run`, the workspace's DVC outputs are put back to what dvc.lock records.

DVC deletes a stage's outputs before it runs the stage. When the stage then fails, dvc.lock still
records the old outputs but the workspace no longer holds them (a bad Parquet at ingest would delete
data/raw, an unreachable tracking server at train the champion's model.pt and its history). So
`dlops run` keeps a hard link to every file output before `dvc repro` (DVC cannot restore the
`cache: false` reports and plots that live in git), and after any failure puts back every output that no
longer matches dvc.lock: the kept file, else the cached one (`dvc checkout --force`). The Prefect flow
(pipelines/retrain.py), which runs the stages one `dvc repro --single-item` at a time, does the same.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockedOutput:
    stage: str
    path: str  # relative to the workspace
    md5: str  # DVC's: a file's content md5, a directory's ends in ".dir"


def locked_outputs(root: Path) -> list[LockedOutput]:
    """Every output dvc.lock records, with its stage and md5 (none without a dvc.lock)."""
    import yaml

    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return []
    return [
        LockedOutput(stage, str(out["path"]), str(out.get("md5", "")))
        for stage, entry in (lock.get("stages") or {}).items()
        for out in entry.get("outs") or []
    ]


@dataclass
class Kept:
    """The workspace's outputs as they were before a run: a kept file per file output, a fingerprint
    (each file's path, inode, size and mtime) per folder output, which DVC replaces when it reruns it."""

    files: dict[str, Path] = field(default_factory=dict)
    folders: dict[str, Fingerprint] = field(default_factory=dict)


Fingerprint = tuple[tuple[str, int, int, int], ...]


def fingerprint(folder: Path) -> Fingerprint | None:
    """Each file under `folder` with its inode, size and mtime; None when `folder` is not a folder."""
    if not folder.is_dir():
        return None
    entries = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            entries.append((str(path.relative_to(folder)), stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def keep_outputs(root: Path, folder: Path, max_copy_bytes: int = 256 * 2**20) -> Kept:
    """Keep in `folder` each file output of dvc.lock as the workspace holds it now (a hard link, which
    survives DVC's delete; a copy across file systems up to `max_copy_bytes`, larger ones are left to
    DVC's cache): `cache: false` outputs (reports in git) can come back from nowhere else. Folder
    outputs are fingerprinted: one the run did not touch needs no `dvc checkout` afterwards."""
    kept = Kept()
    for out in locked_outputs(root):
        source = root / out.path
        if out.md5.endswith(".dir"):
            if (print_ := fingerprint(source)) is not None:
                kept.folders[out.path] = print_
            continue
        if not source.is_file():
            continue
        target = folder / str(len(kept.files))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            if source.stat().st_size > max_copy_bytes:
                continue
            shutil.copy2(source, target)
        kept.files[out.path] = target
    return kept


@contextmanager
def outputs_kept(root: Path) -> Iterator[Kept]:
    """`keep_outputs` into `.dlops/kept-<pid>/` (in the workspace: same disk, hard links) for the
    duration of a run; the kept files go when it ends."""
    folder = root / ".dlops" / f"kept-{os.getpid()}"
    try:
        yield keep_outputs(root, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def restore(root: Path, kept: Kept, dvc: str) -> list[str]:
    """Put back every output of dvc.lock that the workspace no longer matches: kept copies first, then
    the cache. Returns the paths put back; an output that is neither kept nor cached is logged and left
    (it cannot be rebuilt from here). A rejected candidate's register stage leaves no receipt of its own
    (only a passing one writes it), so the receipt of the version dvc.lock records comes back too."""
    restored: list[str] = []
    stale_cached: set[str] = set()
    for out in locked_outputs(root):
        path = root / out.path
        if out.md5.endswith(".dir"):
            if kept.folders.get(out.path) is None or fingerprint(path) != kept.folders[out.path]:
                stale_cached.add(out.stage)  # `dvc checkout` compares directories itself
            continue
        if path.is_file() and _md5(path) == out.md5:
            continue
        if out.path in kept.files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)  # a new file the failed stage wrote: never write through a link
            shutil.copy2(kept.files[out.path], path)
            restored.append(out.path)
        else:
            stale_cached.add(out.stage)
            restored.append(out.path)
    if stale_cached:
        proc = subprocess.run(
            [dvc, "checkout", "--force", "--quiet", *sorted(stale_cached)],
            cwd=root, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode:
            log.warning("dvc checkout could not restore every output: %s", proc.stderr.strip()[-2000:])
    return sorted(p for p in restored if (root / p).exists())


def _md5(path: Path) -> str:
    with path.open("rb") as handle:  # DVC's content hash, not a security one
        return hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
