"""Scheduled retraining against a real Prefect server: `dlops schedule` serves the `retrain` and
`drift-monitor` deployments; three weekly batches are triggered through the API (a clean one and a
corrupt one at the same time, then a drifted one through the monitor), and each outcome is checked in
the data, the registry and the lineage."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.conftest import MLFLOW_URI_VARIABLES, bin_path, make_project, mlflow_uris_restored, tiny_params
from tests.integration.prefect_server import (
    api_settings,
    deployment_exists,
    isolated_env,
    prefect_server,
    serving,
    wait_for_flow_run,
)

pytestmark = pytest.mark.slow

CLEAN_DAY, CORRUPT_DAY, DRIFT_DAY = "2026-11-30", "2026-12-07", "2026-12-14"


def _dvc(root: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run([bin_path("dvc"), *args], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _versions(root: Path) -> list[dict[str, str]]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    with mlflow_uris_restored():
        client = MlflowClient(uri, uri)
        found = client.search_model_versions("name = 'dlops-tabular-mlp'")
        full = [client.get_model_version(v.name, v.version) for v in found]  # search omits aliases
        return [{"version": str(v.version), **dict(v.tags), "aliases": ",".join(v.aliases)} for v in full]


def test_weekly_batches_through_the_served_flows(tmp_path: Path) -> None:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    params = tiny_params()
    params["retrain"]["lock_timeout_s"] = 900  # the second run waits for the first
    root = make_project(tmp_path / "project", params)
    env = isolated_env(tmp_path / "client", None, DLOPS_ROOT=str(root))
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    for name in MLFLOW_URI_VARIABLES:
        env.pop(name, None)
    _dvc(root, "repro", env=env)  # this week's champion
    first_champion = [v for v in _versions(root) if "champion" in v["aliases"]]
    assert [v["version"] for v in first_champion] == ["1"]
    raw_md5 = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["ingest@tabular"]["outs"][0]["md5"]
    corrupt = pd.read_parquet(root / "data/raw/tabular.parquet").head(400).assign(age=-5.0)
    (root / "incoming").mkdir()
    corrupt.to_csv(root / "incoming/corrupt.csv", index=False)

    with prefect_server(tmp_path / "server") as api_url:
        served_env = {**env, "PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        ready = lambda: all(  # noqa: E731
            deployment_exists(api_url, *name)
            for name in (("retrain", "scheduled"), ("drift-monitor", "monitor"))
        )
        log = tmp_path / "schedule.log"
        with serving([bin_path("dlops"), "schedule", "--root", str(root)], served_env, log, ready, cwd=root):
            with api_settings(api_url):
                clean = run_deployment("retrain/scheduled", parameters={"date": CLEAN_DAY}, timeout=0)
                bad = {"tabular": {"source": "table", "path": "incoming/corrupt.csv"}}
                quarantined = run_deployment(
                    "retrain/scheduled", parameters={"batches": bad, "date": CORRUPT_DAY}, timeout=0
                )
            assert isinstance(clean, FlowRun) and isinstance(quarantined, FlowRun)
            clean_state = wait_for_flow_run(api_url, clean.id, timeout=420)
            bad_state = wait_for_flow_run(api_url, quarantined.id, timeout=420)
            assert clean_state.type.name == "COMPLETED", f"{clean_state.message}\n{log.read_text()[-4000:]}"
            assert bad_state.type.name == "FAILED", bad_state.message
            assert "quarantined" in str(bad_state.message) and "age" in str(bad_state.message)

            shifted = {"tabular": {"source": "synthetic-income", "rows": 2000, "shift": {"age": 10}}}
            with api_settings(api_url):
                monitor = run_deployment(
                    "drift-monitor/monitor", parameters={"batches": shifted, "date": DRIFT_DAY}, timeout=0
                )
            assert isinstance(monitor, FlowRun)
            monitor_state = wait_for_flow_run(api_url, monitor.id, timeout=420)
            assert monitor_state.type.name == "COMPLETED", (
                f"{monitor_state.message}\n{log.read_text()[-4000:]}"
            )

    # the data: two accepted batches in order, the corrupt one kept aside, never merged
    manifest = json.loads((root / "data/batches/tabular.json").read_text())
    ids = [entry["id"] for entry in manifest["batches"]]
    assert [i[:10] for i in ids] == [CLEAN_DAY, DRIFT_DAY]
    quarantine = list((root / "data/quarantine/tabular").iterdir())
    assert [q.name[:10] for q in quarantine] == [CORRUPT_DAY]
    report = json.loads((quarantine[0] / "report.json").read_text())
    assert report["validation"]["success"] is False
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["ingest@tabular"]["outs"][0]["md5"] != raw_md5
    assert "up to date" in _dvc(root, "status", env=env).lower()  # dvc.lock matches the workspace
    assert (root / ".dvc-storage").is_dir()  # pushed to the DVC remote

    # the drift reports: next week's draw is calm, the shifted one says why the monitor retrained
    calm = json.loads((root / "reports/drift/tabular" / f"{ids[0]}.json").read_text())
    assert not calm["drifted"] and calm["max_psi"] < 0.05
    drift = json.loads((root / "reports/drift/tabular" / f"{ids[1]}.json").read_text())
    assert drift["drifted"] and "age" in drift["drifted_columns"]

    # the registry: one version per retraining, each with a recorded decision; a champion throughout
    versions = sorted(_versions(root), key=lambda v: int(v["version"]))
    assert [v["version"] for v in versions] == ["1", "2", "3"]
    assert all(v["decision"] in {"promoted", "kept", "rejected"} for v in versions)
    assert sum("champion" in v["aliases"] for v in versions) == 1
    assert versions[1]["data.batches"] == ids[0] and versions[2]["data.batches"] == ",".join(ids)
    assert versions[2]["prefect.flow_run_id"]

    # the lineage of the last version leads back to its data, which can be restored by md5
    chain = json.loads(_dlops(root, env, "lineage", "models:/dlops-tabular-mlp/3", "--json"))
    assert chain["data_batches"] == ",".join(ids)
    assert chain["data_version"] == lock["stages"]["ingest@tabular"]["outs"][0]["md5"]
    _dlops(root, env, "lineage", "models:/dlops-tabular-mlp/1", "--restore")
    restored = root / "restored/dlops-tabular-mlp-v1/tabular.parquet"
    assert hashlib.md5(restored.read_bytes()).hexdigest() == raw_md5


def _dlops(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([bin_path("dlops"), *args], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout
