"""Synthetic tensors for each family, the repo's params, and tiny runnable copies of the project.

The image recipe is the one of images_70k.py (class-dependent blobs plus noise); token ids come from
class-dependent word distributions with padding (id 0) after a random length.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))
# the tests' project builder, for the benchmarks' tiny projects
from tests.projects import make_project  # noqa: E402, F401

Split = tuple[np.ndarray, np.ndarray]


def table(n: int, features: int = 40, seed: int = 0) -> Split:
    """Standardised float32 features (n, F) and a binary label from a noisy linear rule."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    w = rng.normal(size=features)
    y = (x @ w + rng.normal(scale=2.0, size=n) > 0).astype(np.int64)
    return x, y


def images(
    n: int, size: int = 28, classes: int = 10, seed: int = 0, noise: float = 30.0, jitter: int = 0
) -> Split:
    """float32 images (n, 1, size, size) in [0, 1]: a blob per class (centre jittered by up to `jitter`
    pixels) plus Gaussian noise of `noise` grey levels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.int64)
    yy, xx = np.mgrid[0:size, 0:size]
    scale = size / 28
    cy = (6 + 2 * labels) * scale + rng.integers(-jitter, jitter + 1, n)
    cx = (20 - labels) * scale + rng.integers(-jitter, jitter + 1, n)
    out = np.empty((n, 1, size, size), np.float32)
    for start in range(0, n, 4096):  # bounded memory for 70,000 images
        sl = slice(start, start + 4096)
        d2 = (yy[None] - cy[sl, None, None]) ** 2 + (xx[None] - cx[sl, None, None]) ** 2
        blob = 255 * np.exp(-d2 / (18.0 * scale**2)) + rng.normal(0, noise, d2.shape)
        out[sl, 0] = np.clip(blob, 0, 255).round() / 255.0
    return out, labels


def tokens(n: int, length: int = 48, vocab: int = 2000, seed: int = 0) -> Split:
    """int64 token ids (n, length), 0-padded after a random length; each class favours its own words."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int64)
    lengths = rng.integers(length // 4, length + 1, n)
    common = rng.integers(2, vocab, (n, length))
    marked = rng.integers(2, vocab // 10, (n, length)) * 2 + y[:, None]  # parity of the id = the class
    ids = np.where(rng.random((n, length)) < 0.15, marked, common)
    ids[np.arange(length)[None] >= lengths[:, None]] = 0
    return ids.astype(np.int64), y


@dataclass(frozen=True)
class Family:
    pair: str  # the params.yaml entry whose model and train sections are used
    data: Callable[[int, int], Split]  # (n, seed) -> (x, y)
    classes: int
    vocab: int | None = None


FAMILIES = {
    "mlp": Family("tabular-mlp", lambda n, s: table(n, seed=s), 2),
    "cnn": Family("images-cnn", lambda n, s: images(n, seed=s), 10),
    "rnn": Family("text-rnn", lambda n, s: tokens(n, vocab=2000, seed=s), 2, vocab=2000),
    "transformer": Family("text-transformer", lambda n, s: tokens(n, vocab=2000, seed=s), 2, vocab=2000),
    "autoencoder": Family("images-autoencoder", lambda n, s: images(n, seed=s), 10),
    "vae": Family("images-vae", lambda n, s: images(n, seed=s), 10),
    "gan": Family("images-gan", lambda n, s: images(n, seed=s), 10),
}


def family_workload(family: str, n: int) -> tuple[dict[str, Split], dict[str, Any], dict[str, Any]]:
    """Train (n rows) and val (n/5) arrays, the model config and the train section from params.yaml;
    anomaly models keep only their normal classes, as the train stage does."""
    spec = FAMILIES[family]
    entry = pair_entry(spec.pair)
    data = {"train": spec.data(n, 1), "val": spec.data(max(n // 5, 64), 2)}
    if normal := entry["model"].get("normal_classes"):
        data = {k: (x[np.isin(y, normal)], y[np.isin(y, normal)]) for k, (x, y) in data.items()}
    model_cfg = dict(entry["model"]) | ({"vocab_size": spec.vocab} if spec.vocab else {})
    return data, model_cfg, dict(entry["train"])


def repo_params() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "params.yaml").read_text()))


def pair_entry(pair: str) -> dict[str, Any]:
    """models.<pair> of the repo's params.yaml (a deep copy: yaml anchors share mappings)."""
    return copy.deepcopy(repo_params()["models"][pair])


def tabular_params(rows: int, epochs: int, pair: str = "tabular-mlp") -> dict[str, Any]:
    """The repo's params reduced to the tabular task and one of its models, with `rows` and `epochs`."""
    raw = copy.deepcopy(repo_params())
    raw["tasks"] = {"tabular": raw["tasks"]["tabular"]}
    raw["tasks"]["tabular"]["ingest"]["rows"] = rows
    raw["tasks"]["tabular"]["validate"]["min_rows"] = min(1000, rows // 4)
    raw["retrain"]["batches"] = {}  # it may name only tasks that exist
    raw["models"] = {pair: copy.deepcopy(raw["models"][pair])}
    raw["pretraining"] = {}  # its study names models left out here
    raw["models"][pair]["train"]["epochs"] = epochs
    raw["models"][pair]["evaluate"]["bootstrap"] = 200
    # timing, not model quality: no gate may stop a stage (fairness limits must stay set for this task)
    gates = raw["models"][pair]["gates"]
    gates.update(min_primary=0.0, max_overfit_gap=None)
    gates.update(max_demographic_parity_difference=1.0, max_equalized_odds_difference=1.0)
    return raw


def project_env(root: Path | None = None) -> dict[str, str]:
    """This environment with the venv's bin first on PATH, no inherited MLflow store, no telemetry."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", GIT_PYTHON_REFRESH="quiet")
    if root is not None:
        env["DLOPS_ROOT"] = str(root)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `cmd`; on failure stop with its output's tail."""
    done = subprocess.run(cmd, cwd=cwd, env=env or project_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
        )
    return done
