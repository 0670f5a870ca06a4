"""The Prefect test harness itself: a real server on loopback, a script serving a deployment with
`flow.serve`, a run triggered through the API that completes, and no process left behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.integration.prefect_server import (
    api_settings,
    deployment_exists,
    group_alive,
    isolated_env,
    prefect_server,
    serving,
    wait_for_flow_run,
)

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    from prefect import flow


    @flow(name="harness-check")
    def hello(n: int = 1) -> int:
        return n + 1


    if __name__ == "__main__":
        hello.serve(name="harness")
    """
)


def test_served_deployment_runs_to_completion(tmp_path: Path) -> None:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    script = tmp_path / "serve_hello.py"
    script.write_text(SCRIPT)
    groups: list[int] = []
    with prefect_server(tmp_path / "server") as api_url:
        assert api_url.startswith("http://127.0.0.1:") and api_url.endswith("/api")
        port = api_url.rsplit(":", 1)[1].removesuffix("/api")
        groups += _process_groups(f"--port {port}")
        assert groups, "the prefect server process was not found by its --port argument"
        # the runner polls for scheduled runs every PREFECT_RUNNER_POLL_FREQUENCY s (default 10)
        env = isolated_env(tmp_path / "client", api_url, PREFECT_RUNNER_POLL_FREQUENCY="1")
        with serving(
            [sys.executable, str(script)],
            env,
            tmp_path / "serve.log",
            lambda: deployment_exists(api_url, "harness-check", "harness"),
            cwd=tmp_path,
        ) as served:
            groups.append(served.pid)
            with api_settings(api_url):
                run = run_deployment(name="harness-check/harness", parameters={"n": 41}, timeout=0)
            assert isinstance(run, FlowRun)  # async_dispatch: a FlowRun when called from sync code
            state = wait_for_flow_run(api_url, run.id, timeout=45)
            assert state.type.name == "COMPLETED", (
                f"{state.type.name}: {state.message}\n{(tmp_path / 'serve.log').read_text()[-3000:]}"
            )
    assert len(groups) == 2
    assert not [pgid for pgid in groups if group_alive(pgid)], "processes outlived the harness"


def _process_groups(needle: str) -> list[int]:
    """Process groups of the processes whose command line contains `needle`."""
    # -ww: without a terminal (as under pytest's capture) ps cuts lines at 80 columns
    ps = ["ps", "-ww", "-eo", "pgid=,args="]
    table = subprocess.run(ps, capture_output=True, text=True, check=True).stdout
    return sorted({int(line.split(None, 1)[0]) for line in table.splitlines() if needle in line})
