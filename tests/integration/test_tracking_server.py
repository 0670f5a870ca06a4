"""The pipeline against a remote tracking server: a real `mlflow server` on a real PostgreSQL (both on
loopback, in tmp_path), the project pointed at it by MLFLOW_TRACKING_URI only. One tiny pair goes through
the stages; the registered version, its @champion alias and its lineage must be on the server (rows in
PostgreSQL, artifacts under --artifacts-destination) and nothing in a local store of the project."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.conftest import MLFLOW_URI_VARIABLES, bin_path, make_project, project_env, tiny_params
from tests.integration.postgres_server import is_running, postgres_cluster
from tests.integration.prefect_server import free_port, http_ok, mlflow_server_command, serving

pytestmark = pytest.mark.slow
PAIR, MODEL = "tabular-mlp", "dlops-tabular-mlp"


def _healthy(url: str) -> bool:
    return http_ok(f"{url}/health")


def _server_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in MLFLOW_URI_VARIABLES}
    env.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",  # no job runner: nothing here uses one
    )
    return env


def test_stages_register_into_a_postgres_backed_tracking_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from dlops import stages

    artifacts = tmp_path / "server-artifacts"
    with postgres_cluster(tmp_path / "postgres") as pg:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = mlflow_server_command(pg.uri("mlflow"), artifacts, port)
        (tmp_path / "server").mkdir()
        log = tmp_path / "server" / "mlflow.log"
        ready = lambda: _healthy(url)  # noqa: E731
        with serving(command, _server_env(), log, ready, timeout=120, cwd=tmp_path / "server"):
            root = make_project(tmp_path / "project", tiny_params())
            monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
            monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
            for stage in (stages.ingest, stages.validate, stages.preprocess):
                stage("tabular", root)
            stages.train(PAIR, root)
            stages.evaluate(PAIR, root)
            report = stages.register(PAIR, root)
            assert report["promoted"] and report["version"] == "1", report

            # read back through a fresh client of the server
            client = MlflowClient(url, url)
            (found,) = client.search_model_versions(f"name = '{MODEL}'")
            champion = client.get_model_version_by_alias(MODEL, "champion")
            assert str(found.version) == str(champion.version) == "1"
            assert champion.tags["decision"] == "promoted"
            assert champion.run_id, champion
            run = client.get_run(champion.run_id)
            commit = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
            ).stdout.strip()
            tags = run.data.tags
            assert tags["git.commit"] == commit and tags["git.dirty"] in {"true", "false"}
            for key in (
                "data.version",
                "data.processed",
                "params.hash",
                "pipeline.run_id",
                "torch",
                "mlflow",
            ):
                assert tags.get(key), key
            assert tags["dlops.pair"] == PAIR and run.info.status == "FINISHED"
            # artifacts are proxied: mlflow-artifacts: URIs in the experiment, the files on the server
            experiment = client.get_experiment(run.info.experiment_id)
            assert experiment.artifact_location.startswith("mlflow-artifacts:"), experiment.artifact_location
            assert any(artifacts.rglob("MLmodel")) and any(artifacts.rglob("model.pt"))
            mlflow.set_tracking_uri(url)
            model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")  # downloaded through the server
            import pandas as pd

            raw = pd.read_parquet(root / "data/raw/tabular.parquet").drop(columns=["income"]).head(3)
            assert len(model.predict(raw)) == 3

            # ... through the stage function and the `dlops champion` command (env var only)
            info = stages.champion(PAIR, root)
            assert info is not None and info["version"] == "1" and info["run_id"] == champion.run_id
            env = project_env(root) | {"MLFLOW_TRACKING_URI": url}
            shown = subprocess.run(
                [bin_path("dlops"), "champion", PAIR, "--root", str(root)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert shown.returncode == 0, shown.stderr
            assert f'"run_id": "{champion.run_id}"' in shown.stdout and '"version": "1"' in shown.stdout

            # the rows are in PostgreSQL
            with pg.connect("mlflow") as conn, conn.cursor() as cursor:
                cursor.execute("select name, version from model_versions")
                assert cursor.fetchall() == [(MODEL, 1)]
                cursor.execute("select name, alias, version from registered_model_aliases")
                assert cursor.fetchall() == [(MODEL, "champion", 1)]
                cursor.execute(
                    "select value from tags where run_uuid = %s and key = 'git.commit'", [run.info.run_id]
                )
                assert cursor.fetchall() == [(commit,)]

            # and nothing went to a local store of the project
            for local in ("mlflow.db", "mlflow.db.lock", "mlruns", "mlartifacts"):
                assert not (root / local).exists(), local
    assert not is_running(pg), "PostgreSQL still running after the cluster context closed"
