"""Faults (issue 8): whatever is killed, a rerun picks up where it stopped and ends as if nothing happened.

- SIGKILL during `dlops train`: the rerun resumes from the last checkpoint and ends with the same
  history, weights and evaluation metrics as an uninterrupted run; a truncated or garbage checkpoint is
  named, not loaded, and training starts over to the same result; a corrupt model file stops
  `evaluate` and `register` with its name.
- SIGKILL at each step of `dlops register`: no alias points at a version without its decision, nothing
  is half promoted, and a rerun leaves exactly one version of the model with the aliases a clean run
  gives.
- The tracking server going away mid-stage: MLflow's retries, then exit 75 with one line naming the
  server; nothing is promoted on partial results, and after a restart the reruns complete once.

The projects are built once per module (ingest to preprocess, then an uninterrupted train + evaluate as
the reference) and copied per test, MLflow store included. Kills land after a call returned
(tests/integration/fault_injection.py) or when the resume checkpoint reaches an epoch, never after a
sleep; nothing here asserts a duration.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import (
    MLFLOW_URI_VARIABLES,
    bin_path,
    make_project,
    mlflow_uris_restored,
    project_env,
    tiny_params,
)
from tests.integration.prefect_server import free_port, http_ok, log_tail, mlflow_server_command, serving

from dlops.params import Paths
from dlops.training.checkpoint import CheckpointError, load_safe

pytestmark = pytest.mark.slow
PAIR, MODEL = "tabular-mlp", "dlops-tabular-mlp"
WRAPPER = Path(__file__).with_name("fault_injection.py")
TIMEOUT_S = 300  # a safety net for a hung subprocess, not an assertion
# Retries a test can wait out in seconds (the project's own defaults: dlops.tracking.HTTP_RETRY_DEFAULTS).
FAST_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def _params() -> dict[str, Any]:
    """Tiny params with small batches (~0.15 s an epoch on 2 cores) and no early stopping, so a kill
    lands mid-run; the overfit gate is loose because these tests are about faults, not quality."""
    params = tiny_params()
    params["models"][PAIR]["train"].update(epochs=12, batch_size=16, patience=100)
    params["models"][PAIR]["gates"]["max_overfit_gap"] = 0.2
    return params


# ------------------------------------------------------------------------------------------ helpers
def _dlops(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bin_path("dlops"), *args],
        cwd=root,
        env=env or project_env(root),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _faulty(
    root: Path, after: str, *args: str, when: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`dlops ARGS` with a fault right after the call `after` returns (see fault_injection.py)."""
    fault = {"DLOPS_FAULT_AFTER": after, **({"DLOPS_FAULT_WHEN_ARG": when} if when else {})}
    return subprocess.run(
        [sys.executable, str(WRAPPER), *args],
        cwd=root,
        env=(env or project_env(root)) | fault,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@contextlib.contextmanager
def _in_process(**env: str) -> Iterator[Any]:
    """`dlops.stages` called in this process (no interpreter start-up per stage), under `env`; the
    environment is put back afterwards (configure exports the tracking URI and MLflow's retry bounds)."""
    from dlops import stages

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with mlflow_uris_restored():
            yield stages
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


def _copy(src: Path, dst: Path) -> Path:
    """A copy of a project, its MLflow store included; the store's absolute artifact paths are rewritten
    to the copy's, so the copy never writes into the original."""
    shutil.copytree(src, dst, symlinks=True)
    db = dst / "mlflow.db"
    if db.exists():
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            tables = [row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")]
            for table in tables:
                for _, column, kind, *_ in conn.execute(f'pragma table_info("{table}")').fetchall():
                    if kind.upper().startswith(("VARCHAR", "TEXT")):
                        conn.execute(
                            f'update "{table}" set "{column}" = replace("{column}", ?, ?)',
                            (str(src), str(dst)),
                        )
    return dst


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(uri, uri)


def _local(root: Path) -> str:
    return f"sqlite:///{root}/mlflow.db"


def _registry(uri: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """({version: tags}, {alias: version}) of MODEL; both empty when it is not registered."""
    client = _client(uri)
    versions = {str(v.version): dict(v.tags) for v in client.search_model_versions(f"name = '{MODEL}'")}
    (model,) = client.search_registered_models(f"name = '{MODEL}'") or [None]
    return versions, {alias: str(v) for alias, v in (model.aliases if model else {}).items()}


def _assert_no_half_state(uri: str, champion_before: str | None) -> None:
    """Every alias points at a version that carries its decision and gates; @champion has not moved."""
    versions, aliases = _registry(uri)
    for alias, version in aliases.items():
        tags = versions[version]
        assert tags.get("decision") and tags.get("decision.reasons"), (alias, version, tags)
        assert any(key.startswith("gate.") for key in tags), (alias, version, tags)
    assert aliases.get("champion") == champion_before, aliases


def _assert_registered_once(uri: str, root: Path, aliases: dict[str, str]) -> str:
    """Exactly one version carries the project's model (by sha256), with its decision tags, and the
    aliases are `aliases`; returns that version."""
    sha = _sha(root)
    versions, found = _registry(uri)
    (version,) = [v for v, tags in versions.items() if tags.get("dlops.model_sha256") == sha]
    assert versions[version]["decision"] == "promoted", versions[version]
    passed = [value for key, value in versions[version].items() if key.endswith(".passed")]
    assert passed and set(passed) == {"true"}, versions[version]
    assert found == aliases, found
    return version


def _sha(root: Path) -> str:
    from dlops.files import file_sha256

    return file_sha256(Paths(root).checkpoint(PAIR))


def _saved_epoch(resume: Path) -> int:
    """The epoch in the resume checkpoint; 0 while there is none (os.replace makes a read see a whole
    file, old or new, but tolerate one that fails anyway)."""
    try:
        return int(load_safe(resume)["epoch"])
    except (CheckpointError, KeyError):
        return 0


def _wait_for_epoch(proc: subprocess.Popen[bytes], resume: Path, epoch: int, log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while _saved_epoch(resume) < epoch:
        if proc.poll() is not None:
            pytest.fail(f"train exited {proc.returncode} before epoch {epoch} was saved:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no epoch {epoch} in {resume} within {TIMEOUT_S} s:\n{log_tail(log)}")
        time.sleep(0.02)


def _start_train(root: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [bin_path("dlops"), "train", PAIR], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _assert_same_training(root: Path, reference: Path) -> None:
    """History, checkpoint metadata and every tensor equal to the uninterrupted run's."""
    import torch

    ours, theirs = Paths(root), Paths(reference)
    assert json.loads(ours.history(PAIR).read_text()) == json.loads(theirs.history(PAIR).read_text())
    mine, ref = load_safe(ours.checkpoint(PAIR)), load_safe(theirs.checkpoint(PAIR))
    meta = {k: v for k, v in mine.items() if k != "state_dict"}
    assert meta == {k: v for k, v in ref.items() if k != "state_dict"}
    assert mine["state_dict"].keys() == ref["state_dict"].keys()
    for key, tensor in ref["state_dict"].items():
        assert torch.equal(mine["state_dict"][key], tensor), key


def _stderr_lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


# ----------------------------------------------------------------------------------------- projects
@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("processed") / "project", _params())
    with _in_process() as stages:
        for stage in (stages.ingest, stages.validate, stages.preprocess):
            stage("tabular", root)
    return root


@pytest.fixture(scope="module")
def reference(processed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted train + evaluate: what every interrupted run must end identical to."""
    root = _copy(processed, tmp_path_factory.mktemp("reference") / "project")
    with _in_process() as stages:
        stages.train(PAIR, root)
        stages.evaluate(PAIR, root)
    return root


@pytest.fixture(scope="module")
def interrupted(processed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training SIGKILLed right after its first resume checkpoint was written."""
    root = _copy(processed, tmp_path_factory.mktemp("interrupted") / "project")
    done = _faulty(root, "dlops.training.loop:_save_resume", "train", PAIR)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert _saved_epoch(Paths(root).resume_checkpoint(PAIR)) == 1
    return root


@pytest.fixture(scope="module")
def challenger(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference model registered as v1 @champion, then another (seed 7) trained and evaluated under
    a policy that promotes it: registering it moves @previous to v1, then @champion to v2."""
    root = _copy(reference, tmp_path_factory.mktemp("challenger") / "project")
    with _in_process() as stages:
        stages.register(PAIR, root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["models"][PAIR]["train"]["seed"] = 7
    params["models"][PAIR]["gates"].update(promotion_test="tolerance", promotion_tolerance=0.5)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with _in_process() as stages:
        stages.train(PAIR, root)
        stages.evaluate(PAIR, root)
    return root


# ----------------------------------------------------------------------------------------- training
def test_sigkill_during_training_resumes_to_the_uninterrupted_result(
    processed: Path, reference: Path, tmp_path: Path
) -> None:
    root = _copy(processed, tmp_path / "project")
    resume, log = Paths(root).resume_checkpoint(PAIR), tmp_path / "killed.log"
    proc = _start_train(root, project_env(root), log)
    _wait_for_epoch(proc, resume, 2, log)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=TIMEOUT_S) == -signal.SIGKILL
    epoch = _saved_epoch(resume)
    assert 2 <= epoch < 12 and not Paths(root).history(PAIR).exists(), "killed after it finished"

    rerun = _ok(_dlops(root, "train", PAIR))
    assert f"resuming from {resume} at epoch {epoch}" in rerun.stderr
    assert not resume.exists()  # consumed once the model is written
    _assert_same_training(root, reference)
    with _in_process() as stages:
        stages.evaluate(PAIR, root)
        ours, theirs = (json.loads(Paths(r).eval_metrics(PAIR).read_text()) for r in (root, reference))
        assert ours == theirs
        # the killed process could not end its MLflow run; the rerun ended it KILLED (its pid is gone),
        # and find_run skips it: one version is registered
        stages.register(PAIR, root)
    client = _client(_local(root))
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"tags.`dlops.pair` = '{PAIR}'")
    assert sorted(run.info.status for run in runs) == ["FINISHED", "KILLED"]
    (finished,) = [run for run in runs if run.info.status == "FINISHED"]
    assert finished.data.tags["train.resumed_from_epoch"] == str(epoch)
    version = _assert_registered_once(_local(root), root, {"champion": "1"})
    assert client.get_model_version(MODEL, version).run_id == finished.info.run_id


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_resume_checkpoint_is_named_and_training_starts_over(
    interrupted: Path, reference: Path, tmp_path: Path, damage: str
) -> None:
    root = _copy(interrupted, tmp_path / "project")
    resume = Paths(root).resume_checkpoint(PAIR)
    data = resume.read_bytes()
    resume.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x80garbage\x00" * 4096)

    rerun = _ok(_dlops(root, "train", PAIR))
    (line,) = [line for line in rerun.stderr.splitlines() if "resume checkpoint not loaded" in line]
    assert str(resume) in line and "training from scratch" in line
    assert "resuming from" not in rerun.stderr
    _assert_same_training(root, reference)


@pytest.mark.parametrize("command", ["evaluate", "register"])
def test_corrupt_model_file_stops_evaluate_and_register_naming_it(
    reference: Path, tmp_path: Path, command: str
) -> None:
    root = _copy(reference, tmp_path / "project")
    model = Paths(root).checkpoint(PAIR)
    model.write_bytes(model.read_bytes()[:1000])
    done = _dlops(root, command, PAIR)
    assert done.returncode == 1, done.stderr
    (line,) = _stderr_lines(done.stderr, f"dlops {command}: error:")
    assert str(model) in line and "cannot be loaded safely" in line
    assert _registry(_local(root)) == ({}, {})


# ------------------------------------------------------------------------------------- registration
KILL_POINTS = {
    # the pyfunc is logged into the training run, no version exists yet
    "model-logged": ("mlflow.models.model:Model.log", None, "reference"),
    # the version exists (created with its decision tags in one transaction), no alias yet
    "version-created": ("mlflow.tracking.client:MlflowClient._create_model_version", None, "reference"),
    # a champion exists; @previous has moved to it, @champion not yet to the candidate
    "previous-moved": (
        "mlflow.tracking.client:MlflowClient.set_registered_model_alias",
        "previous",
        "challenger",
    ),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_during_registration_leaves_no_half_state(
    point: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    after, when, base = KILL_POINTS[point]
    root = _copy(request.getfixturevalue(base), tmp_path / "project")
    uri = _local(root)
    champion_before = _registry(uri)[1].get("champion")

    killed = _faulty(root, after, "register", PAIR, when=when)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    _assert_no_half_state(uri, champion_before)
    receipt = Paths(root).register_report(PAIR)  # the stage's output: none for this model yet
    assert not receipt.exists() or json.loads(receipt.read_text())["model_sha256"] != _sha(root)

    _ok(_dlops(root, "register", PAIR))
    expected = {"champion": "1"} if base == "reference" else {"champion": "2", "previous": "1"}
    assert _assert_registered_once(uri, root, expected) == expected["champion"]
    with _in_process() as stages:  # idempotent: nothing new, nothing moves
        again = stages.register(PAIR, root)
    assert again["version"] == expected["champion"] and not again["promoted"], again
    assert _registry(uri)[1] == expected and len(_registry(uri)[0]) == len(expected)


# ---------------------------------------------------------------------------------- tracking server
def _healthy(url: str) -> bool:
    return http_ok(f"{url}/health")


@contextlib.contextmanager
def _tracking_server(store: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`mlflow server` on 127.0.0.1:`port` over `store`/mlflow.db, artifacts proxied to `store`/artifacts;
    started again on the same store after a kill, it serves what was committed. Yields the process
    (leader of its own process group)."""
    url = f"http://127.0.0.1:{port}"
    command = mlflow_server_command(f"sqlite:///{store}/mlflow.db", store / "artifacts", port)
    env = {key: value for key, value in os.environ.items() if key not in MLFLOW_URI_VARIABLES}
    env.update(DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    store.mkdir(parents=True, exist_ok=True)
    with serving(command, env, store / "server.log", lambda: _healthy(url), timeout=120, cwd=store) as proc:
        yield proc


def _assert_transient_exit(done: subprocess.CompletedProcess[str] | str, stage: str, url: str) -> None:
    """Exit 75 was checked by the caller; one line names the stage and the server, after retries."""
    text = done if isinstance(done, str) else done.stderr
    (line,) = _stderr_lines(text, f"dlops {stage}:")
    assert "transient error (retry may succeed)" in line and f"tracking server {url} " in line, line
    assert "Retrying" in text  # urllib3's warning per retry: the call was retried before giving up


def test_tracking_server_going_away_fails_cleanly_and_reruns_complete_once(
    processed: Path, reference: Path, tmp_path: Path
) -> None:
    root, store, port = _copy(processed, tmp_path / "project"), tmp_path / "server", free_port()
    url = f"http://127.0.0.1:{port}"
    env = project_env(root) | {"MLFLOW_TRACKING_URI": url} | FAST_RETRIES
    resume, log = Paths(root).resume_checkpoint(PAIR), tmp_path / "train.log"

    # Case A: the server dies while `dlops train` runs (after its first epoch)
    with _tracking_server(store, port) as server:
        proc = _start_train(root, env, log)
        _wait_for_epoch(proc, resume, 1, log)
        os.killpg(server.pid, signal.SIGKILL)
        assert proc.wait(timeout=TIMEOUT_S) == 75, log_tail(log)
    _assert_transient_exit(log.read_text(), "train", url)
    assert resume.exists() and not Paths(root).checkpoint(PAIR).exists()

    with _tracking_server(store, port) as server:
        rerun = _ok(_dlops(root, "train", PAIR, env=env))
        assert f"resuming from {resume} at epoch" in rerun.stderr
        _assert_same_training(root, reference)
        with _in_process(MLFLOW_TRACKING_URI=url, **FAST_RETRIES) as stages:
            stages.evaluate(PAIR, root)

        # Case B: the server dies during `dlops register`, right after the version was created
        with_kill = env | {"DLOPS_FAULT_KILL_GROUP": str(server.pid)}
        after = "mlflow.tracking.client:MlflowClient._create_model_version"
        killed = _faulty(root, after, "register", PAIR, env=with_kill)
    assert killed.returncode == 75, killed.stderr
    _assert_transient_exit(killed, "register", url)

    with _tracking_server(store, port):
        _assert_no_half_state(url, champion_before=None)  # nothing promoted on partial results
        _ok(_dlops(root, "register", PAIR, env=env))
        _assert_registered_once(url, root, {"champion": "1"})
        assert len(_registry(url)[0]) == 1


def test_default_http_retries_back_off_for_tens_of_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """dlops bounds MLflow's retries where the user did not (7 retries, ~4 minutes a call otherwise)."""
    from urllib3.exceptions import NewConnectionError
    from urllib3.util.retry import Retry

    from dlops import tracking

    for name in tracking.HTTP_RETRY_DEFAULTS:
        monkeypatch.setenv(name, "")  # recorded, so the teardown restores what was there
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "45")
    tracking.bound_http_retries()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "45"  # the user's choice stays
    retries = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    retry = Retry(
        total=retries, connect=retries, backoff_factor=int(os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
    )
    refused = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    sleeps = []
    for _ in range(retries):  # the schedule MLflow's session follows on a refused connection
        retry = retry.increment("POST", "/api/2.0/mlflow/runs/log-batch", error=refused)
        sleeps.append(retry.get_backoff_time())
    assert 10 <= sum(sleeps) <= 60, sleeps
