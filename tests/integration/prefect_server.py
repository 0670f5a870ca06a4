"""Helpers for tests against a real Prefect server: `prefect server start` on loopback over a SQLite file,
a long-running process that serves deployments (`flow.serve(...)`), and polling of flow runs and
deployments through the Prefect client.

Every process is started in its own session and stopped with its whole process group (the server's
services, a runner's flow-run subprocesses), so nothing outlives the test. Import it as
`from tests.integration.prefect_server import ...` (the repo root is on `pythonpath`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

SERVER_START_TIMEOUT_S = 90.0
STOP_GRACE_S = 20.0
POLL_S = 0.5
LOG_TAIL_LINES = 40


def prefect_bin(name: str = "prefect") -> str:
    return str(Path(sys.executable).with_name(name))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_env(home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without any inherited PREFECT_* setting (a developer's PREFECT_API_URL,
    profile, ...), with its own PREFECT_HOME, no telemetry, and the given API URL and extra variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def prefect_server(home: Path, timeout: float = SERVER_START_TIMEOUT_S) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 at a free port, over `<home>/prefect.db`, without the UI;
    logs to `<home>/server.log`. Yields the API URL (`http://127.0.0.1:PORT/api`) once /api/health
    answers 200; stops the server's whole process group on exit."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = isolated_env(
        home,
        # canonical names in prefect 3.8; the legacy PREFECT_API_DATABASE_CONNECTION_URL and
        # PREFECT_UI_ENABLED are still accepted as aliases
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home}/prefect.db",
        PREFECT_SERVER_UI_ENABLED="false",
    )
    command = [prefect_bin(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    log = home / "server.log"

    def healthy() -> bool:
        return http_ok(f"{api_url}/health")

    with serving(command, env, log, healthy, timeout=timeout, cwd=home, what="prefect server"):
        yield api_url


def start_logged(
    command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """`command` in its own session (so its process group can be stopped), stdout and stderr appended
    to `log`, no stdin."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@contextmanager
def serving(
    command: list[str],
    env: dict[str, str],
    log: Path,
    ready: Callable[[], bool],
    timeout: float = 90,
    cwd: Path | None = None,
    what: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a long-running process (stdout and stderr to `log`) in its own session, wait until `ready()`
    (polled every 0.5 s) and yield it; fail with the log's tail if it exits first or `timeout` passes.
    On exit, SIGTERM its process group, SIGKILL whatever is left after 20 s."""
    what = what or Path(command[0]).name
    proc = start_logged(command, env, log, cwd)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{what} exited with {proc.returncode} before it was ready; last lines of {log}:\n"
                    f"{log_tail(log)}"
                )
            if ready():
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{what} was not ready within {timeout:.0f} s; last lines of {log}:\n{log_tail(log)}"
                )
            time.sleep(POLL_S)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM to the process group of `proc` (started with `start_new_session=True`), wait up to `grace`
    seconds for the group to empty, then SIGKILL what is left (children that outlived the leader stay in
    its group)."""
    pgid = proc.pid
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    try:
        with opener.open(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def api_settings(api_url: str) -> Iterator[None]:
    """Point this process's Prefect client at `api_url` (`get_client()` takes no URL; it reads the
    PREFECT_API_URL setting, which `temporary_settings` overrides in a context variable)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def deployment_exists(api_url: str, flow_name: str, deployment_name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with api_settings(api_url), get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(f"{flow_name}/{deployment_name}")
        except ObjectNotFound:
            return False
    return True


def wait_for_flow_run(api_url: str, flow_run_id: UUID | str, timeout: float, poll: float = POLL_S) -> State:
    """Poll the flow run until its state is final (COMPLETED, FAILED, CRASHED, CANCELLED) and return that
    state (`.type.name`, `.message`); TimeoutError with the last state seen otherwise."""
    from prefect.client.orchestration import get_client

    run_id = flow_run_id if isinstance(flow_run_id, UUID) else UUID(str(flow_run_id))
    deadline = time.monotonic() + timeout
    last: State | None = None
    with api_settings(api_url), get_client(sync_client=True) as client:
        while True:
            last = client.read_flow_run(run_id).state
            if last is not None and last.is_final():
                return last
            if time.monotonic() > deadline:
                seen = f"{last.type.name} ({last.name}): {last.message}" if last is not None else "no state"
                raise TimeoutError(f"flow run {run_id} not final after {timeout:.0f} s; last state: {seen}")
            time.sleep(poll)


def mlflow_server_command(backend_uri: str, artifacts: Path, port: int) -> list[str]:
    """`mlflow server` on 127.0.0.1:`port`, one worker, artifacts proxied to `artifacts`."""
    return [
        prefect_bin("mlflow"), "server", "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
