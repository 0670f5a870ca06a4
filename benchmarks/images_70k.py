"""A Fashion-MNIST-sized IDX set (70,000 28x28 images, 10 classes) through ingest, validate and
preprocess, plus one CNN epoch, in a temporary copy of the project: time and peak memory per step.

The images are synthetic (class-dependent blobs plus noise, written as gzipped IDX files like the
real ones), since nothing is downloaded. Run: .venv/bin/python benchmarks/images_70k.py
"""

from __future__ import annotations

import gzip
import json
import platform
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
N, SIZE, CLASSES = 70_000, 28, 10


def write_idx(root: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, N).astype(np.uint8)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    centers = [(6 + 2 * c, 20 - c) for c in range(CLASSES)]
    images = np.empty((N, SIZE, SIZE), np.uint8)
    for c, (cy, cx) in enumerate(centers):
        blob = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
        rows = labels == c
        noise = rng.normal(0, 30, (int(rows.sum()), SIZE, SIZE))
        images[rows] = np.clip(blob + noise, 0, 255).astype(np.uint8)
    (root / "data/external").mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "data/external/images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, N, SIZE, SIZE) + images.tobytes())
    with gzip.open(root / "data/external/labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, N) + labels.tobytes())


def project(root: Path) -> None:
    for name in ("src", "pipelines", "expectations"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    task = params["tasks"]["images"]
    task["ingest"] = {
        "source": "idx",
        "images": "data/external/images-idx3-ubyte.gz",
        "labels": "data/external/labels-idx1-ubyte.gz",
        "size": None,
    }
    task["validate"].update(suite="expectations/fashion.json", draft_if_missing=True, min_rows=1000)
    params["tasks"] = {"images": task}
    params["retrain"]["batches"] = {}  # it may name only tasks that exist
    cnn = params["models"]["images-cnn"]
    cnn["train"].update(epochs=1, batch_size=128)
    cnn["evaluate"]["attribution_images"] = 0
    params["models"] = {"images-cnn": cnn}
    params["pretraining"] = {}  # its study names models left out here
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def step(root: Path, *args: str) -> dict[str, float]:
    started = time.perf_counter()
    dlops = str(Path(sys.executable).with_name("dlops"))
    cmd = [dlops, *args]
    peak = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], check=True); " + (
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    wrapped = [sys.executable, "-c", peak, *cmd]
    proc = subprocess.run(
        wrapped, cwd=root, capture_output=True, text=True, env={"DLOPS_ROOT": str(root), **_env()}
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    peak_kib = int(proc.stdout.strip().splitlines()[-1])
    return {"seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": round(peak_kib / 1024)}


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dlops-70k-"))
    try:
        project(root)
        write_idx(root)
        results = {name: step(root, *cmd) for name, cmd in [
            ("ingest", ("ingest", "images")),
            ("validate", ("validate", "images")),
            ("preprocess", ("preprocess", "images")),
            ("train cnn, 1 epoch", ("train", "images-cnn")),
        ]}  # fmt: skip
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.processor() or platform.machine()}, {_cores()} cores, CPU only",
            "images": N,
            "results": results,
        }
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
