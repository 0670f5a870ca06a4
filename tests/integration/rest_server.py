"""`mlflow models serve` on loopback for tests and benchmarks: start a registered model's server, wait
until it answers, send JSON, stop it (no pytest here)."""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(
    model_uri: str, root: Path, mlflow_bin: str, env: dict[str, str], timeout_s: float = 180
) -> Iterator[str]:
    """`mlflow models serve -m MODEL_URI --env-manager local` over the project's store, on a free
    loopback port; yields the base URL once `/ping` answers, and stops the server afterwards."""
    port = free_port()
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}
    command = [mlflow_bin, "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", "127.0.0.1",
               "-p", str(port), "--workers", "1"]  # fmt: skip
    log = (Path(tempfile.gettempdir()) / f"mlflow-serve-{port}.log").open("w")  # not in the project
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{model_uri}: the server exited {server.returncode}: {_tail(log.name)}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{model_uri}: no answer on {url} in {timeout_s:.0f} s: {_tail(log.name)}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        Path(log.name).unlink(missing_ok=True)


def _tail(path: str) -> str:
    return Path(path).read_text(errors="replace")[-2000:]


def invoke(url: str, body: str | bytes) -> tuple[int, Any]:
    """POST a body to /invocations as JSON: (HTTP status, the decoded answer or its text)."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(
        f"{url}/invocations", data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        status, text = refused.code, refused.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def frame_body(frame: pd.DataFrame) -> str:
    """A DataFrame as MLflow's `dataframe_split` JSON."""
    return '{"dataframe_split": ' + frame.to_json(orient="split", index=False) + "}"


def tensor_body(array: np.ndarray) -> str:
    """An array as MLflow's `inputs` JSON (a tensor input)."""
    return json.dumps({"inputs": array.tolist()})


def answer_frame(answer: Any) -> pd.DataFrame:
    """The server's `predictions` (a list of records) as a DataFrame."""
    return pd.DataFrame(answer["predictions"])
