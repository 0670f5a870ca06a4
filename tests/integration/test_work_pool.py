"""`dlops schedule --work-pool POOL`: the deployments of `dlops schedule` registered into a Prefect
`process` work pool instead of served, and run by a real `prefect worker` process against a real
server; the same again from a git source; a pool of another type refused. The fast checks at the end
need no server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from tests.conftest import bin_path, make_project, project_env, tiny_params
from tests.integration.prefect_server import (
    api_settings,
    isolated_env,
    prefect_server,
    start_logged,
    stop,
    wait_for_flow_run,
)

POOL = "test-pool"
RETRAIN_CRON, MONITOR_CRON = "0 6 * * 1", "30 5 * * *"
DAY = "2026-11-30"
WORKER_TIMEOUT_S = 180


def _params() -> dict[str, Any]:
    params = tiny_params()
    params["retrain"]["schedule"] = {"cron": RETRAIN_CRON, "timezone": "UTC"}
    params["retrain"]["drift"]["schedule"] = {"cron": MONITOR_CRON, "timezone": "Europe/Paris"}
    params["retrain"]["drift"]["retrain_on_drift"] = False  # a monitor run here never trains
    return params


def _env(root: Path, home: Path, api_url: str) -> dict[str, str]:
    """The project's environment (venv on PATH, no inherited MLflow URIs), without any inherited PREFECT_*
    setting (isolated_env drops them, project_env would carry them back), against the test's server."""
    env = {k: v for k, v in project_env(root).items() if not k.startswith("PREFECT_")}
    return isolated_env(home, api_url, **env)


def _dlops(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bin_path("dlops"), *args], cwd=root, env=env, capture_output=True, text=True, timeout=180
    )


def _schedule(root: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    done = _dlops(root, env, "schedule", "--work-pool", POOL, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return {**json.loads(done.stdout), "stderr": done.stderr}


def _work(pool: str, env: dict[str, str], cwd: Path, log: Path) -> None:
    """One `prefect worker start --run-once`: it polls the pool once, runs what is due, waits for the
    runs to end and exits; killed with its process group if it outlives WORKER_TIMEOUT_S."""
    cwd.mkdir(parents=True, exist_ok=True)
    proc = start_logged([bin_path("prefect"), "worker", "start", "--pool", pool, "--run-once"], env, log, cwd)
    try:
        proc.wait(timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit within {WORKER_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()[-4000:]


def _deployments(api_url: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    with api_settings(api_url), get_client(sync_client=True) as client:
        found = client.read_deployments()
        flows = {f.id: f.name for f in client.read_flows()}
        return {f"{flows[d.flow_id]}/{d.name}": d for d in found}


def _run_monitor_on_worker(api_url: str, env: dict[str, str], tmp: Path, what: str) -> tuple[Any, str]:
    """Trigger `drift-monitor/monitor`, let one worker run it; the finished flow run, the worker's log."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    with api_settings(api_url):
        triggered = run_deployment("drift-monitor/monitor", parameters={"date": DAY}, timeout=0)
    assert isinstance(triggered, FlowRun)
    log = tmp / f"worker-{what}.log"
    _work(POOL, env, tmp / f"worker-{what}", log)
    state = wait_for_flow_run(api_url, triggered.id, timeout=60)
    assert state.type.name == "COMPLETED", f"{state.message}\n{log.read_text()[-4000:]}"
    with api_settings(api_url), get_client(sync_client=True) as client:
        return client.read_flow_run(triggered.id), log.read_text()


@pytest.mark.slow
def test_deployments_in_a_work_pool_run_on_a_worker(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    root = make_project(tmp_path / "project", _params())
    with prefect_server(tmp_path / "server") as api_url:
        env = _env(root, tmp_path / "client", api_url)
        ingest = _dlops(root, env, "ingest", "tabular")  # the drift check's reference data
        assert ingest.returncode == 0, ingest.stderr

        first = _schedule(root, env)
        assert first["work_pool"] == {"name": POOL, "type": "process", "created": True}
        assert f"created work pool '{POOL}' (type process)" in first["stderr"]
        assert first["source"] == str(root)
        assert first["deployments"]["retrain/scheduled"]["cron"] == RETRAIN_CRON
        assert first["deployments"]["drift-monitor/monitor"]["cron"] == MONITOR_CRON

        with api_settings(api_url), get_client(sync_client=True) as client:
            pool = client.read_work_pool(POOL)
        assert pool.type == "process"
        deployed = _deployments(api_url)
        assert sorted(deployed) == ["drift-monitor/monitor", "retrain/scheduled"]
        retrain, monitor = deployed["retrain/scheduled"], deployed["drift-monitor/monitor"]
        for d in (retrain, monitor):
            assert d.work_pool_name == POOL and d.tags == ["dlops"]
            assert d.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(root)}}
            ]
        assert retrain.entrypoint == "pipelines/retrain.py:retrain"
        assert monitor.entrypoint == "pipelines/monitor.py:drift_monitor"
        assert [(s.schedule.cron, s.schedule.timezone) for s in retrain.schedules] == [(RETRAIN_CRON, "UTC")]
        assert [(s.schedule.cron, s.schedule.timezone) for s in monitor.schedules] == [
            (MONITOR_CRON, "Europe/Paris")
        ]
        assert retrain.parameters == {"root": str(root), "scheduled": True}
        assert monitor.parameters == {"root": str(root)}
        assert retrain.global_concurrency_limit is not None and retrain.global_concurrency_limit.limit == 1
        assert retrain.concurrency_options is not None
        assert retrain.concurrency_options.collision_strategy == "ENQUEUE"
        assert monitor.global_concurrency_limit is None
        assert first["deployments"]["retrain/scheduled"]["id"] == str(retrain.id)

        # a second time: the same deployments updated, no duplicate deployment or schedule
        second = _schedule(root, env)
        assert second["work_pool"]["created"] is False and "created work pool" not in second["stderr"]
        again = _deployments(api_url)
        assert {name: d.id for name, d in again.items()} == {name: d.id for name, d in deployed.items()}
        assert [len(d.schedules) for d in again.values()] == [1, 1]

        # a worker runs a triggered monitor run in the project
        run, log = _run_monitor_on_worker(api_url, env, tmp_path, "local")
        assert run.work_pool_name == POOL and run.deployment_id == monitor.id
        assert "set_working_directory" in log
        reports = list((root / "reports/drift/tabular").glob(f"{DAY}*.json"))
        assert len(reports) == 1, "the worker's run did not write its drift report into the project"

        # from git: each flow run clones; no `root` parameter, so the flows use the clone
        remote = tmp_path / "remote" / "dlops.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(root), str(remote)], check=True)
        from_git = _schedule(root, env, "--source", f"file://{remote}")
        assert from_git["source"] == f"file://{remote}"
        cloned = _deployments(api_url)
        assert {name: d.id for name, d in cloned.items()} == {name: d.id for name, d in deployed.items()}
        for d in cloned.values():
            assert d.pull_steps is not None
            (step,) = d.pull_steps
            assert step["prefect.deployments.steps.git_clone"]["repository"] == f"file://{remote}"
            assert "root" not in d.parameters
            assert d.parameter_openapi_schema is not None
            # the flows' default `root` is empty (their own checkout), not a path of the deploying machine
            assert d.parameter_openapi_schema["properties"]["root"].get("default", "") == ""
        assert cloned["retrain/scheduled"].parameters == {"scheduled": True}
        run, log = _run_monitor_on_worker(api_url, env, tmp_path, "git")
        assert run.work_pool_name == POOL and "Deployment step 'git_clone' completed" in log
        # the clone has no data/raw (DVC outputs are not in git): its drift check reports that and the
        # run completes; nothing is written into the project
        assert len(list((root / "reports/drift/tabular").glob(f"{DAY}*.json"))) == 1

        # a pool that runs images is not taken over
        with api_settings(api_url), get_client(sync_client=True) as client:
            client.create_work_pool(WorkPoolCreate(name="images", type="docker"))
        refused = _dlops(root, env, "schedule", "--work-pool", "images")
        assert refused.returncode == 1
        assert "'images'" in refused.stderr and "'docker'" in refused.stderr, refused.stderr


# --- fast: no server ---------------------------------------------------------------------------------


@pytest.fixture
def params_only(tmp_path: Path) -> Path:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_params(), sort_keys=False))
    return tmp_path


def test_one_definition_for_serving_and_for_a_pool(params_only: Path) -> None:
    from pipelines.schedule import MONITOR, RETRAIN, _definitions

    served = _definitions(params_only)
    pulled = _definitions(params_only, root_parameter="")
    assert served[RETRAIN]["parameters"] == {"root": str(params_only.resolve()), "scheduled": True}
    assert pulled[RETRAIN]["parameters"] == {"scheduled": True} and pulled[MONITOR]["parameters"] == {}
    for name in (RETRAIN, MONITOR):
        assert [s.cron for s in served[name]["schedules"]] == [s.cron for s in pulled[name]["schedules"]]
    assert [s.cron for s in served[MONITOR]["schedules"]] == [MONITOR_CRON]
    assert served[RETRAIN]["concurrency_limit"].limit == 1


class _Client:
    def __init__(self, pool_type: str) -> None:
        self.pool_type = pool_type

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read_work_pool(self, name: str) -> Any:
        return SimpleNamespace(name=name, type=self.pool_type)


def test_a_pool_of_another_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.client.orchestration
    from pipelines.schedule import WorkPoolTypeError, ensure_process_pool

    monkeypatch.setattr(prefect.client.orchestration, "get_client", lambda **_: _Client("kubernetes"))
    with pytest.raises(WorkPoolTypeError, match=r"'gpu-pool' exists with type 'kubernetes'"):
        ensure_process_pool("gpu-pool")
    monkeypatch.setattr(prefect.client.orchestration, "get_client", lambda **_: _Client("process"))
    assert ensure_process_pool("gpu-pool") is False  # exists, right type: kept, not created
