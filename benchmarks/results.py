"""Shared by the benchmark scripts: the environment a run happened in, its table on stdout, and a
markdown section appended to RESULTS.md (or the file given with --results)."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
DEFAULT_RESULTS = BENCH / "RESULTS.md"
VERSIONED = ("torch", "mlflow", "prefect", "dvc")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has: --quick and --results."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run of seconds to a minute")
    ap.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help=f"markdown file to append to ({DEFAULT_RESULTS})",
    )
    return ap


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median wall seconds of `repeats` calls of `fn`, and every sample."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), samples


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def _gpu() -> str:
    if shutil.which("nvidia-smi"):
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip():
            return "; ".join(line.strip() for line in done.stdout.strip().splitlines())
    return "none"


def _git(*args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def environment() -> dict[str, str]:
    """Hardware, versions, code commit, UTC date and the exact command line of this run."""
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no")
    dirty = "unknown" if status is None else ("dirty" if status else "clean")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": shlex.join([sys.executable, *sys.argv]),
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable)",
        "ram": f"{_ram_gib()} GiB",
        "gpu": _gpu(),
        "load average at start (1, 5, 15 min)": load,
        "versions": ", ".join(
            [f"python {platform.python_version()}", *(f"{d} {_version(d)}" for d in VERSIONED)]
        ),
        "dlops": f"{commit} ({dirty})",
    }


ENV_AT_START = environment()  # load average before the benchmark itself loads the machine


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return columns


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "/")


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """The rows as a rich table (plain text when rich is missing)."""
    columns = _columns(rows)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}\n" + "\t".join(columns))
        for row in rows:
            print("\t".join(_cell(row.get(c)) for c in columns))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console(width=200).print(table)


def append_results(
    title: str, rows: Sequence[dict[str, Any]], notes: str, path: Path = DEFAULT_RESULTS
) -> None:
    """Append a markdown section (environment, one table, notes) to `path`, creating it if needed."""
    columns = _columns(rows)
    lines = [f"## {title}", ""]
    lines += [
        f"- {key}: `{value}`" if key == "command" else f"- {key}: {value}"
        for key, value in ENV_AT_START.items()
    ]
    if columns:
        lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    if notes.strip():
        lines += ["", notes.strip()]
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "" if path.exists() else "# Benchmark results\n\nAppended by the scripts in benchmarks/.\n\n"
    with path.open("a", encoding="utf-8") as out:
        out.write(header + "\n".join(lines) + "\n\n")
    print(f"appended to {path}")
