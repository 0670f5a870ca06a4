"""What each stage process pays besides its work: imports, the MLflow store, the interpreter.

(a) The six stages of a tiny tabular project (2,000 rows, 2 epochs), each run once as
`python -X importtime -m dlops <stage> <name>`: wall seconds, seconds spent importing (the top-level
imports' cumulative time) and the three heaviest top-level imports. (b) The building blocks, each in a
fresh interpreter (median of n): the interpreter alone, the CLI, torch, mlflow, pandas,
great_expectations, and opening the project's MLflow SQL store (client + one query, imports excluded).
(c) Commands with nothing to do: `dlops register` of a checkpoint already registered (it re-judges the
gates and refreshes the tags, which is its job when only params changed), `dlops search` of a model
without a search, `dlops check-params`, and `dvc repro` in the project once it is up to date.
Run: .venv/bin/python benchmarks/stage_startup.py [--quick] [--results PATH]
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import workloads as wl
from results import append_results, parser, print_table

PAIR, TASK = "tabular-mlp", "tabular"
STAGES = [("ingest", TASK), ("validate", TASK), ("preprocess", TASK)]
STAGES += [("train", PAIR), ("evaluate", PAIR), ("register", PAIR)]
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
STORE = (
    "import time, mlflow; from pathlib import Path; from dlops import tracking; "
    "from dlops.params import load_params, paths; p = paths(Path('.')); "
    "tracking.configure(p.root, load_params(p.params).mlflow); t = time.perf_counter(); "
    "from dlops.tracking import store; store.client().search_experiments(max_results=1); "
    "print(time.perf_counter() - t)"
)


def top_imports(stderr: str) -> dict[str, float]:
    """Seconds per top-level import (cumulative, nested imports included) from -X importtime output."""
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match and len(match[3]) == 1:  # one space before the name: imported at the top level
            found[match[4]] = found.get(match[4], 0.0) + int(match[2]) / 1e6
    return found


def run_stage(root: Path, stage: str, name: str) -> dict[str, Any]:
    env = wl.project_env(root)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dlops", stage, name],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dlops {stage} {name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    imports = top_imports(done.stderr)
    heaviest = sorted(imports.items(), key=lambda kv: -kv[1])[:3]
    total = sum(imports.values())
    return {
        "measurement": f"`dlops {stage} {name}`",
        "wall s": round(wall, 2),
        "imports s": round(total, 2),
        "imports share": f"{total / wall:.0%}",
        "heaviest imports (s)": ", ".join(f"{k} {v:.2f}" for k, v in heaviest),
    }


def median_of(cmd: list[str], cwd: Path, repeats: int) -> tuple[float, str]:
    samples, out = [], ""
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=wl.project_env(cwd), capture_output=True, text=True)
        samples.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        out = done.stdout
    return statistics.median(samples), out


def blocks(root: Path, repeats: int) -> list[dict[str, Any]]:
    py = sys.executable
    rows = []
    for label, code in (
        ("python, nothing imported", "pass"),
        ("import dlops.cli (the CLI)", "import dlops.cli"),
        ("import pandas", "import pandas"),
        ("import torch", "import torch"),
        ("import mlflow", "import mlflow"),
        ("import great_expectations", "import great_expectations"),
    ):
        seconds, _ = median_of([py, "-c", code], root, repeats)
        rows.append({"measurement": label, "wall s": round(seconds, 2), "imports s": None})
    samples = [float(median_of([py, "-c", STORE], root, 1)[1]) for _ in range(repeats)]
    rows.append(
        {"measurement": "open the MLflow SQL store + 1 query", "wall s": round(statistics.median(samples), 2)}
    )
    return rows


def nothing_to_do(root: Path, repeats: int) -> list[dict[str, Any]]:
    dlops, dvc = str(wl.BIN / "dlops"), str(wl.BIN / "dvc")
    rows = []
    for label, cmd in (
        (f"`dlops register {PAIR}`, already registered", [dlops, "register", PAIR]),
        ("`dlops check-params`", [dlops, "check-params"]),
        ("`dvc repro`, up to date", [dvc, "repro"]),
    ):
        seconds, _ = median_of(cmd, root, repeats)
        rows.append({"measurement": label, "wall s": round(seconds, 2)})
    return rows


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    args = ap.parse_args()
    repeats = 2 if args.quick else 5
    tmp = Path(tempfile.mkdtemp(prefix="dlops-startup-"))
    try:
        root = wl.make_project(tmp / "project", wl.tabular_params(2000, 2, PAIR), remote=False)
        rows = [run_stage(root, stage, name) for stage, name in STAGES]
        wl.run([str(wl.BIN / "dvc"), "commit", "-f"], root, wl.project_env(root))  # the stages ran by hand
        rows += blocks(root, repeats)
        rows += nothing_to_do(root, repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    title = "Stage start-up: imports, store and interpreter per `dlops` process (CPU)"
    title += " [quick]" if args.quick else ""
    print_table(title, rows)
    notes = (
        "(a) one run each, in DAG order, on a fresh temporary project (git + `dvc init`); `imports s` sums "
        "the cumulative time of the top-level imports in `-X importtime` (which itself adds a little). "
        f"(b) and (c): median of {repeats} fresh processes each, in the same project after (a); "
        "`dvc commit -f` records (a)'s outputs first so `dvc repro` has nothing to do."
    )
    append_results(title, rows, notes, args.results)


if __name__ == "__main__":
    main()
