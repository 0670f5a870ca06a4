"""Serving speed of the registered champions, per kind: rows per second of the pyfunc (what `dlops
predict` and `mlflow models serve` run) at batch sizes 1, 64 and 1,024, and the p50/p99 latency of
`mlflow models serve` (local env manager, one worker, loopback) for 1-row and 64-row requests.

The rows are each task's raw test split, as a caller sends them (kind.serving_inputs). Run it on a
project whose pipeline has run (the champions are in its mlflow.db), e.g. after `make run`:

    .venv/bin/python benchmarks/serving.py [--root .] [--models tabular-mlp,images-cnn,text-rnn] [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import workloads as wl  # noqa: F401  (puts the repository on sys.path for tests.*)
from results import append_results, parser, print_table
from tests.integration.rest_server import frame_body, invoke, served, tensor_body

from dlops import tracking
from dlops.kinds import kind_of
from dlops.params import load_params, paths

BATCHES = (1, 64, 1024)


def _rows(inputs: Any, n: int) -> Any:
    """The first n rows (repeated when the split is shorter)."""
    while len(inputs) < n:
        inputs = pd.concat([inputs, inputs]) if isinstance(inputs, pd.DataFrame) else _doubled(inputs)
    return inputs.iloc[:n].reset_index(drop=True) if isinstance(inputs, pd.DataFrame) else inputs[:n]


def _doubled(array: Any) -> Any:
    import numpy as np

    return np.concatenate([array, array])


def _body(rows: Any) -> str:
    return frame_body(rows) if isinstance(rows, pd.DataFrame) else tensor_body(rows)


def pyfunc_rows_per_s(model: Any, inputs: Any, batch: int, total: int) -> float:
    rows = _rows(inputs, total)
    model.predict(_rows(inputs, batch))  # warm-up
    started = time.perf_counter()
    for start in range(0, total, batch):
        model.predict(
            rows.iloc[start : start + batch] if hasattr(rows, "iloc") else rows[start : start + batch]
        )
    return total / (time.perf_counter() - started)


def rest_latency_ms(url: str, rows: Any, requests: int) -> tuple[float, float]:
    body = _body(rows)
    status, answer = invoke(url, body)  # warm-up, and the server must answer it
    if status != 200:
        raise RuntimeError(f"the server answered {status}: {str(answer)[:500]}")
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        invoke(url, body)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=wl.REPO, help="a project whose pipeline has run")
    ap.add_argument(
        "--models", default="tabular-mlp,images-cnn,text-rnn", help="model names, comma-separated"
    )
    args = ap.parse_args()
    root = args.root.resolve()
    p = paths(root)
    params = load_params(p.params)
    tracking.configure(root, params.mlflow)
    total, requests = (256, 20) if args.quick else (4096, 200)
    out = []
    for pair in args.models.split(","):
        entry = params.pair(pair)
        task_cfg = params.task(entry.task)
        kind = kind_of(task_cfg)
        inputs = kind.serving_inputs(p, entry, task_cfg, pair).inputs
        model = tracking.load_champion(pair, params.mlflow)
        row: dict[str, Any] = {"model": pair, "kind": kind.name}
        for batch in BATCHES:
            row[f"pyfunc rows/s (batch {batch})"] = round(pyfunc_rows_per_s(model, inputs, batch, total), 1)
        name = tracking.model_name(pair, params.mlflow)
        venv_bin = Path(sys.executable).parent  # the server runs `uvicorn` from PATH
        env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
        with served(f"models:/{name}@champion", root, str(venv_bin / "mlflow"), env) as url:
            for size in (1, 64):
                p50, p99 = rest_latency_ms(url, _rows(inputs, size), requests)
                row[f"REST p50 ms ({size} row{'s' if size > 1 else ''})"] = round(p50, 1)
                row[f"REST p99 ms ({size} row{'s' if size > 1 else ''})"] = round(p99, 1)
        out.append(row)
        print_table("serving", out)
    notes = (
        f"pyfunc: {total} rows of the task's raw test split (repeated when shorter) per batch size, after "
        "one warm-up batch, in this process. REST: `mlflow models serve --env-manager local --workers 1` on "
        f"127.0.0.1, {requests} sequential requests per size after one warm-up (JSON `dataframe_split` "
        "for tables and texts, `inputs` for images); latency is the client's wall time per request."
    )
    append_results(
        "Serving: pyfunc throughput and REST latency of the champions (CPU)", out, notes, args.results
    )


if __name__ == "__main__":
    main()
