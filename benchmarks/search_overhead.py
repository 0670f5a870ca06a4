"""What a search trial costs beyond its training: `stages.search` on a small tabular project against the
same trainings by `loop.train` alone, with the values the study chose.

No trial is pruned (the pruner waits for every epoch), so each trial trains its full epochs in both
runs. The difference between the search's wall time and the sum of the bare trainings is what the
search adds: opening the Optuna storage (SQLite) and the study, loading the train/val splits once, each
trial's MLflow child run (params, per-epoch metrics, tags) and Optuna bookkeeping, and the parent run's
summary, plots and trials table. Run: .venv/bin/python benchmarks/search_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import workloads as wl
from results import append_results, parser, print_table

PAIR = "tabular-mlp"


def search_params(rows: int, epochs: int, trials: int) -> dict[str, Any]:
    params = wl.tabular_params(rows, epochs, PAIR)
    params["models"][PAIR]["search"] = {
        "trials": trials,
        "seed": 0,
        "pruner": {"startup_trials": trials, "warmup_epochs": epochs},  # never prunes
        "space": {
            "train.lr": {"low": 0.0003, "high": 0.01, "log": True},
            "model.dropout": {"low": 0.0, "high": 0.5},
        },
    }
    return params


def measure(root: Path) -> dict[str, Any]:
    """Wall seconds of stages.search, of loading the data the way it does, and of every trial's training
    repeated by loop.train without logger (same values, same seed, same data)."""
    import optuna

    from dlops import search, stages
    from dlops.pairs.search import trial_fit
    from dlops.params import load_params, paths

    started = time.perf_counter()
    stages.search(PAIR, root)
    search_s = time.perf_counter() - started

    params, p = load_params(root / "params.yaml"), paths(root)
    started = time.perf_counter()
    fit = trial_fit(PAIR, params, p)
    setup_s = time.perf_counter() - started
    entry = params.pair(PAIR)
    result = json.loads(p.search_result(PAIR).read_text())
    study = optuna.load_study(study_name=result["study"], storage=p.search_storage())
    bare = []
    inside = [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials]
    for trial in study.trials:
        candidate = search.apply(entry, json.loads(trial.user_attrs[search.VALUES_ATTR]))
        started = time.perf_counter()
        fit(candidate, None)
        bare.append(time.perf_counter() - started)
    return {
        "search_s": search_s,
        "setup_s": setup_s,
        "bare": bare,
        "inside": inside,
        "trials": len(study.trials),
    }


def main(args: argparse.Namespace) -> None:
    rows_n, epochs, trials = (3000, 3, 4) if args.quick else (20_000, 10, 12)
    root = Path(tempfile.mkdtemp(prefix="dlops-search-"))
    try:
        wl.make_project(root, search_params(rows_n, epochs, trials), dvc=False)
        for stage in ("ingest", "validate", "preprocess"):
            wl.run([str(wl.BIN / "dlops"), stage, "tabular"], root, wl.project_env(root))
        found = measure(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    bare_s, inside_s = sum(found["bare"]), sum(found["inside"])
    per_trial = (inside_s - bare_s) / found["trials"]  # the trial's MLflow run and Optuna's bookkeeping
    rows = [
        {
            "trials": found["trials"],
            "epochs/trial": epochs,
            "search s": round(found["search_s"], 2),
            "trials s": round(inside_s, 2),
            "bare trainings s": round(bare_s, 2),
            "added per trial ms": round(1000 * per_trial, 1),
            "per-trial share": f"{100 * (inside_s - bare_s) / inside_s:.1f}%",
            "outside trials s": round(found["search_s"] - inside_s, 2),
            "data load s": round(found["setup_s"], 2),
        }
    ]
    title = "Search overhead: stages.search vs its trials' trainings alone (tabular-mlp, sqlite)"
    title += " [quick]" if args.quick else ""
    print_table(title, rows)
    notes = (
        f"{rows_n} rows of synthetic-income ({int(rows_n * 0.7)} training rows), tabular-mlp, {trials} "
        f"trials of {epochs} epochs over train.lr and model.dropout, nothing pruned, one worker. `search "
        "s` is one in-process `stages.search` on a new study (a fresh Optuna SQLite file and mlflow.db); "
        "`bare trainings s` repeats each trial's training with `loop.train` alone (same values, seed and "
        "data, no logger). `trials s` sums each trial's time as Optuna recorded it (start to complete), so "
        "`added per trial` is a trial's MLflow child run (create, params, per-epoch metrics, tags, "
        "finish) and Optuna's reports and pruning checks; `outside trials s` is what a search pays once: "
        "imports, the storage and study, the MLflow store, the parent run, the data load (also shown "
        "alone), the fANOVA importances, three plots and trials.csv."
    )
    append_results(title, rows, notes, args.results)


if __name__ == "__main__":
    main(parser(__doc__.splitlines()[0]).parse_args())
