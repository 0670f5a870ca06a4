"""The whole default pipeline on this machine: `dvc repro` in a fresh `git clone` of this repo at HEAD
(no DVC cache, so every stage runs; the default data is generated), with the repo's .venv. Wall time,
peak memory (max RSS of one process from /usr/bin/time -v, and the sampled RSS of the whole process
tree) and per-stage times from the moments DVC announces each stage.

--quick runs only ingest, validate and preprocess (`dvc repro preprocess`).
Run: .venv/bin/python benchmarks/full_pipeline.py [--quick] [--keep | --keep-at DIR]
Then `dvc repro` again, five times, with nothing left to do (the no-op figure).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import workloads as wl
from results import append_results, parser, print_table

STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (psutil when installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def _proc_tree_rss(pid: int) -> int:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier += children
    total = 0
    for p in tree:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def repro(clone: Path, env: dict[str, str], targets: list[str], time_file: Path) -> dict[str, Any]:
    """Run `dvc repro` under /usr/bin/time -v (when present); timestamp its lines, sample tree RSS."""
    cmd = [str(wl.BIN / "dvc"), "repro", *targets]
    gnu_time = Path("/usr/bin/time")
    if gnu_time.exists():
        cmd = [str(gnu_time), "-v", "-o", str(time_file), *cmd]
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    stream = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend((time.perf_counter(), ln) for ln in stream))
    reader.start()
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.5)
    reader.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dvc repro failed ({proc.returncode}):\n{''.join(ln for _, ln in lines)[-4000:]}")
    max_rss = _time_max_rss(time_file) or resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "wall": wall,
        "lines": [(t - started, ln) for t, ln in lines],
        "peak_tree": peak,
        "max_rss_kib": max_rss,
    }


def _time_max_rss(path: Path) -> int | None:
    if not path.exists():
        return None
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", path.read_text())
    return int(match.group(1)) if match else None


def stage_times(lines: list[tuple[float, str]], wall: float) -> list[tuple[str, float]]:
    """(stage, seconds) from one 'Running stage' line to the next (the last one to the end)."""
    starts = [(t, m.group(1)) for t, ln in lines if (m := STAGE_LINE.search(ln))]
    ends = [t for t, _ in starts[1:]] + [wall]
    return [(name, end - t) for (t, name), end in zip(starts, ends, strict=True)]


def clone_repo(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A clone of HEAD and an environment that runs its own code (PYTHONPATH) with the repo's venv."""
    clone = tmp / "clone"
    wl.run(["git", "clone", "-q", str(wl.REPO), str(clone)], tmp)
    env = wl.project_env(clone)
    env.update(PYTHONPATH=str(clone / "src"), PYTHONUNBUFFERED="1", DLOPS_PIPELINE_RUN_ID="benchmark")
    where = wl.run([str(wl.BIN / "python"), "-c", "import dlops; print(dlops.__file__)"], clone, env).stdout
    if not where.strip().startswith(str(clone)):
        raise SystemExit(f"the clone's code is not the one imported: {where}")
    return clone, env


def noop_repro_seconds(clone: Path, env: dict[str, str], targets: list[str], repeats: int = 5) -> list[float]:
    """Wall seconds of `dvc repro` with nothing to do, `repeats` times, right after the full run."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = wl.run([str(wl.BIN / "dvc"), "repro", *targets], clone, env).stdout
        samples.append(time.perf_counter() - started)
        if "Running stage" in out:
            raise SystemExit(f"dvc repro after the full run still ran stages:\n{out[-2000:]}")
    return samples


def main(args: argparse.Namespace) -> None:
    if args.keep_at:
        args.keep_at.mkdir(parents=True, exist_ok=False)
    tmp = args.keep_at or Path(tempfile.mkdtemp(prefix="dlops-full-"))
    targets = ["preprocess"] if args.quick else []
    try:
        clone, env = clone_repo(tmp)
        dvc = str(wl.BIN / "dvc")
        stages = wl.run([dvc, "stage", "list", "--name-only"], clone, env).stdout.split()
        pending = json.loads(wl.run([dvc, "status", "--json"], clone, env).stdout or "{}")
        print(f"dvc status in the clone: {len(pending)} of {len(stages)} stages need a run", flush=True)
        run = repro(clone, env, targets, tmp / "time.txt")
        after = " ".join(wl.run([dvc, "status", *targets], clone, env).stdout.split())[:120].rstrip(".")
        noop = noop_repro_seconds(clone, env, targets)
    finally:
        if args.keep or args.keep_at:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    per_stage = stage_times(run["lines"], run["wall"])
    rows: list[dict[str, Any]] = [{"stage": name, "seconds": round(s, 1)} for name, s in per_stage]
    kinds: dict[str, float] = {}
    for name, seconds in per_stage:
        kinds[name.split("@")[0]] = kinds.get(name.split("@")[0], 0.0) + seconds
    rows += [{"stage": f"all {kind} stages", "seconds": round(s, 1)} for kind, s in kinds.items()]
    first = next((t for t, ln in run["lines"] if STAGE_LINE.search(ln)), run["wall"])
    rows += [
        {"stage": "dvc before its first stage", "seconds": round(first, 1)},
        {"stage": f"dvc repro (wall, {len(per_stage)} stages)", "seconds": round(run["wall"], 1)},
        {
            "stage": f"then dvc repro with nothing to do (median of {len(noop)})",
            "seconds": round(statistics.median(noop), 2),
        },
        {"stage": "max RSS of one process", "MiB": round(run["max_rss_kib"] / 1024)},
        {
            "stage": "peak RSS of the process tree (sampled every 0.5 s)",
            "MiB": round(run["peak_tree"] / 2**20),
        },
    ]
    title = "Full pipeline: dvc repro in a fresh clone (CPU)"
    title += " [quick: up to preprocess]" if args.quick else ""
    print_table(title, rows)
    notes = (
        f"`git clone` of HEAD into a temporary directory, the repo's .venv first on PATH and the clone's "
        f"src on PYTHONPATH (so the committed code runs, not the working tree's); `dvc repro "
        f"{' '.join(targets)}`. Before: `dvc status` listed {len(pending)} of the {len(stages)} stages of "
        f"dvc.yaml as changed (empty DVC cache). After: {after}. Stage seconds "
        "run from DVC's 'Running stage' line to the next one (so they include DVC's own checks and lock "
        "updates). Max RSS of one process is GNU time's figure (or getrusage of the children without it); "
        "the tree's RSS sums every process under dvc (shared pages counted once per process)."
    )
    append_results(title, rows, notes, args.results)


if __name__ == "__main__":
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone")
    ap.add_argument("--keep-at", type=Path, help="run in this new directory and keep it (clone: DIR/clone)")
    main(ap.parse_args())
