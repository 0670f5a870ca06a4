"""`dlops run` runs every stage whose inputs are valid even when a candidate is rejected: the rejection
is named, the other model is still trained and registered, and the exit code says "rejected" (3)."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
from tests.conftest import bin_path, make_project, project_env, tiny_params
from tests.integration.test_pipeline import client

pytestmark = pytest.mark.slow


def test_a_rejected_candidate_does_not_stop_the_others(tmp_path: Path) -> None:
    params = tiny_params()
    strict = copy.deepcopy(params["models"]["tabular-mlp"])
    strict["gates"] = {**strict["gates"], "min_primary": 0.999}  # no model reaches it
    params["models"] = {"tabular-strict": strict, "tabular-mlp": params["models"]["tabular-mlp"]}
    root = make_project(tmp_path / "project", params)
    proc = subprocess.run(
        [bin_path("dlops"), "run"],
        cwd=root,
        env=project_env(root),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "rejected by their gates: tabular-strict" in proc.stderr
    assert "register@tabular-strict" in proc.stderr and "(gates.min_primary)" in proc.stderr
    assert "tabular-mlp" in proc.stdout  # the leaderboard was printed
    version = client(root).get_model_version_by_alias("dlops-tabular-mlp", "champion")
    assert version.tags["decision"] == "promoted"
    assert (root / "reports/register/tabular-mlp.json").is_file()
