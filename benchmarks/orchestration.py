"""What the runners cost around the work: (a) `dvc status` and a no-op `dvc repro` in the workspace
(target <= 2 s), (b) the Prefect flow against direct stage calls and plain `dvc repro` on tiny temporary
projects (server start-up reported apart), (c) `dlops --help` (target <= 1 s) and `dlops check-params`.

(a) never reproduces anything: `dvc status` runs before each repro, and a workspace that is not up to
date is reported as such. Run: .venv/bin/python benchmarks/orchestration.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import os
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

UP_TO_DATE = "Data and pipelines are up to date."
PAIR, TASK = "tabular-mlp", "tabular"
STAGES = [f"ingest@{TASK}", f"validate@{TASK}", f"preprocess@{TASK}", f"train@{PAIR}", f"evaluate@{PAIR}"]
STAGES.append(f"register@{PAIR}")


def timed(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> tuple[float, str]:
    """Wall seconds and output of `cmd`; with `check`, a failure stops the benchmark."""
    started = time.perf_counter()
    if check:
        done = wl.run(cmd, cwd, env)
    else:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    out = done.stdout + done.stderr
    return time.perf_counter() - started, out if done.returncode == 0 else f"exit {done.returncode}: {out}"


def row(what: str, samples: list[float], target: float | None = None, note: str = "") -> dict[str, Any]:
    median = statistics.median(samples) if samples else None
    verdict = "-" if target is None or median is None else ("met" if median <= target else "MISSED")
    return {
        "measurement": what,
        "median s": None if median is None else round(median, 3),
        "min..max s": f"{min(samples):.2f}..{max(samples):.2f}" if samples else "-",
        "n": len(samples),
        "target": "-" if target is None else f"<= {target:g} s",
        "verdict": verdict,
        "note": note,
    }


def lock_digest(ws: Path) -> str:
    return hashlib.sha256((ws / "dvc.lock").read_bytes()).hexdigest()


def workspace_runners(ws: Path, repeats: int) -> list[dict[str, Any]]:
    """(a): `dvc status`, then a no-op `dvc repro` only while status says everything is up to date."""
    env, dvc = wl.project_env(ws), str(wl.BIN / "dvc")
    status: list[float] = []
    repro: list[float] = []
    note = ""
    for _ in range(repeats):
        seconds, out = timed([dvc, "status"], ws, env, check=False)
        if out.startswith("exit "):
            note = f"dvc status failed, repro not run: {' '.join(out.split())[:300]}"
            break
        status.append(seconds)
        if UP_TO_DATE not in out:  # keep timing status; never reproduce a workspace that has work to do
            note = f"workspace not up to date, repro not run; dvc status: {' '.join(out.split())[:300]}"
            repro = []
            continue
        if note:  # it was not up to date before: no repro timings from a workspace in flux
            continue
        lock = lock_digest(ws)
        seconds, out = timed([dvc, "repro"], ws, env, check=False)
        repro.append(seconds)
        if out.startswith("exit ") or "Running stage" in out or lock != lock_digest(ws):
            note = f"repro failed or ran a stage, timings discarded: {' '.join(out.split())[:300]}"
            repro = []
    return [
        row(f"dvc status ({ws})", status),
        row(f"dvc repro, nothing to do ({ws})", repro, 2.0, note),
    ]


def direct(root: Path) -> tuple[float, float]:
    """The six stages as `dlops <stage>` commands, then `dlops leaderboard --log` as the flow does."""
    env, dlops = wl.project_env(root), str(wl.BIN / "dlops")
    stages = sum(timed([dlops, *s.split("@")], root, env)[0] for s in STAGES)
    board, _ = timed([dlops, "leaderboard", "--log", "--json", "--root", str(root)], root, env)
    return stages, board


def through_prefect(root: Path, home: Path) -> dict[str, float]:
    """The project's retrain flow under prefect_test_harness (a temporary server subprocess on SQLite)."""
    for name in [k for k in os.environ if k.startswith(("PREFECT_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))]:
        del os.environ[name]
    os.environ.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    os.environ["PATH"] = wl.project_env()["PATH"]
    sys.path.insert(0, str(wl.REPO))
    started = time.perf_counter()
    from pipelines.retrain import retrain
    from prefect.testing.utilities import prefect_test_harness

    times = {"import prefect + flow module": time.perf_counter() - started}
    started = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        times["server start-up"] = time.perf_counter() - started
        started = time.perf_counter()
        summary = retrain(root=str(root))
        times["flow"] = time.perf_counter() - started
        started = time.perf_counter()
    times["server shut-down"] = time.perf_counter() - started
    decision = str(summary.get("decisions", {}).get(PAIR, "?"))
    if not decision.startswith("version"):
        raise SystemExit(f"the flow did not register {PAIR}: {decision}")
    return times


def runners(tmp: Path, quick: bool) -> list[dict[str, Any]]:
    """(b): the same tiny DAG three ways, each on its own fresh project."""
    rows_n, epochs = (2000, 2) if quick else (6000, 6)
    params = wl.tabular_params(rows_n, epochs, PAIR)
    stages_s, board_s = direct(wl.make_project(tmp / "direct", params, remote=False))
    repro_root = wl.make_project(tmp / "repro", params, remote=False)
    repro_s, _ = timed([str(wl.BIN / "dvc"), "repro"], repro_root, wl.project_env(repro_root))
    single = [  # what the flow pays per stage on top of the stage itself: one DVC process each
        timed([str(wl.BIN / "dvc"), "repro", "--single-item", s], repro_root, wl.project_env(repro_root))[0]
        for s in STAGES
    ]
    flow = through_prefect(wl.make_project(tmp / "flow", params, remote=False), tmp / "prefect-home")
    work = f"{rows_n} rows, {PAIR} {epochs} epochs"
    return [
        row("6 stages as `dlops` commands", [stages_s], note=work),
        row("  + `dlops leaderboard --log` (the flow's last task)", [stages_s + board_s]),
        row("`dvc repro` of the same DAG", [repro_s], note="no leaderboard"),
        row("  then `dvc repro --single-item <stage>`, up to date", single, note=f"sum {sum(single):.1f}s"),
        row("Prefect flow `retrain` (dvc repro --single-item per stage + leaderboard)", [flow["flow"]]),
        row("  Prefect: import prefect + pipelines.retrain", [flow["import prefect + flow module"]]),
        row("  Prefect: prefect_test_harness server start-up", [flow["server start-up"]]),
        row("  Prefect: server shut-down", [flow["server shut-down"]]),
    ]


def cli(repeats: int) -> list[dict[str, Any]]:
    """(c): start-up of the CLI and the params check, in the workspace."""
    env, dlops = wl.project_env(wl.REPO), str(wl.BIN / "dlops")
    help_s = [timed([dlops, "--help"], wl.REPO, env)[0] for _ in range(repeats)]
    check_s = [timed([dlops, "check-params"], wl.REPO, env)[0] for _ in range(repeats)]
    return [row("`dlops --help`", help_s, 1.0), row("`dlops check-params`", check_s)]


def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dlops-orchestration-"))
    try:
        rows = workspace_runners(args.workspace, 2 if args.quick else 5)
        rows += cli(3 if args.quick else 10)
        rows += runners(tmp, args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    title = "Orchestration overhead: DVC, Prefect, CLI start-up" + (" [quick]" if args.quick else "")
    print_table(title, rows)
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    notes = (
        "Every command runs as a subprocess with the venv's bin first on PATH. (b) builds three identical "
        "tiny projects (git + `dvc init`, no DVC remote, so the flow's push step only lists remotes); the "
        "flow runs in this process under `prefect.testing.utilities.prefect_test_harness` (a temporary "
        "Prefect server subprocess over SQLite), whose start-up and shut-down are timed apart from the "
        f"flow. Single runs in (b): each needs a fresh project. {git}."
    )
    append_results(title, rows, notes, args.results)


if __name__ == "__main__":
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, default=wl.REPO, help="workspace for (a) (default: this repo)")
    main(ap.parse_args())
