"""Shared fixtures: tiny params so the real code paths run in seconds on a CPU."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("DO_NOT_TRACK", "1")


def tiny_params(**overrides: Any) -> dict[str, Any]:
    """The repo's params.yaml shrunk: 1,500 rows, a small MLP, a few epochs."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["tasks"]["tabular"]["ingest"]["rows"] = 3000
    raw["tasks"]["tabular"]["validate"]["min_rows"] = 500
    model = raw["models"]["tabular-mlp"]
    model["model"]["hidden_sizes"] = [32]
    model["train"].update(epochs=6, batch_size=128, patience=3)
    for path, value in overrides.items():
        node = raw
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return raw


def make_project(dest: Path, params: dict[str, Any]) -> Path:
    """A runnable copy of the project (code, DAG, suites, DVC config) with the given params."""
    for name in ("src", "pipelines", "expectations"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([bin_path("dvc"), "init", "-q"], cwd=dest, check=True)
    subprocess.run([bin_path("dvc"), "config", "core.analytics", "false"], cwd=dest, check=True)
    subprocess.run(
        [bin_path("dvc"), "remote", "add", "-d", "local", str(dest / ".dvc-storage")],
        cwd=dest,
        check=True,
        capture_output=True,
    )
    return dest


def bin_path(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def project_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("MLFLOW_TRACKING_URI", None)
    env["DLOPS_ROOT"] = str(root)
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", tiny_params())
