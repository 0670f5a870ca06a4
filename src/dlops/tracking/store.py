"""Where runs and models are kept: the tracking URI, `configure` (store and experiment), MLflow's HTTP
retry bounds, the lock serialising a fresh local store, and the client every other tracking module uses.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from dlops.errors import BadInput
from dlops.params import MlflowConfig
from dlops.redact import redact_text

if TYPE_CHECKING:
    from mlflow import MlflowClient

_STATE: dict[str, str] = {}


def project_root() -> Path | None:
    """The project `configure` was last called for (None before)."""
    return Path(_STATE["root"]) if "root" in _STATE else None


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root.resolve() / 'mlflow.db'}"


def configure(root: Path, cfg: MlflowConfig) -> str:
    """Point MLflow (tracking and registry) at the project store and make sure the experiment exists.

    Idempotent; two processes racing on a fresh sqlite store are serialised by a lock file, and a
    lost race to create the experiment just reads the winner's. Returns the experiment id.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    bound_http_retries()
    uri = tracking_uri(root)
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme not in (*TRACKING_SCHEMES, *DATABASE_SCHEMES):
        what = f"has scheme {scheme!r}" if scheme else "is a plain path (MLflow's file store)"
        raise BadInput(
            f"MLFLOW_TRACKING_URI={redact_uri(uri)!r} {what}: dlops tracks to a server "
            "(http://<host>:5000, https://...) or a sqlite file (sqlite:///path/mlflow.db); unset it for "
            "the project's own mlflow.db"
        )
    if scheme in DATABASE_SCHEMES:
        raise BadInput(
            f"MLFLOW_TRACKING_URI={redact_uri(uri)} points at a database directly: artifacts would be "
            "written under this machine's ./mlruns. Start a tracking server on it (make tracking-server) "
            "and set MLFLOW_TRACKING_URI=http://<host>:5000"
        )
    _STATE["target"] = uri  # named by the CLI if the server does not answer from here on
    _STATE["root"] = str(root.resolve())  # the checkout whose commit runs carry (lineage.source_tags)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with _store_lock(uri):
        client = MlflowClient(uri, uri)  # the first use of a new sqlite db runs its migrations
        experiment = client.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            location = (root.resolve() / "mlartifacts").as_uri() if _is_local(uri) else None
            try:
                experiment_id = client.create_experiment(cfg.experiment, artifact_location=location)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = client.get_experiment_by_name(cfg.experiment)
                assert experiment is not None
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)  # fluent calls (log_model) default to it
    _STATE.update(uri=uri, experiment_id=experiment_id)
    return experiment_id


DATABASE_SCHEMES = {"postgresql", "mysql", "mssql"}
TRACKING_SCHEMES = {"http", "https", "sqlite", "databricks"}

# MLflow retries a failed HTTP call 7 times, 2 s * 2**n apart, each attempt waiting up to 120 s: about
# 4 minutes per call when a tracking server is gone, and a stage makes several calls. These bounds give
# up after ~30 s (sleeps 0, 4, 8, 16 s plus up to 1 s jitter each) when the server refuses connections,
# and after ~3 minutes when it accepts them and never answers. A value the user set is kept.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "1.0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def bound_http_retries() -> None:
    """Set MLflow's HTTP retry and timeout variables to HTTP_RETRY_DEFAULTS where the user has not."""
    for name, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)


def server_uri() -> str | None:
    """The tracking server this process was configured for (password masked), or None for a local store
    or before `configure`; the CLI names it when the server stops answering."""
    uri = _STATE.get("target")
    return redact_uri(uri) if uri and not _is_local(uri) else None


@contextlib.contextmanager
def one_attempt() -> Iterator[None]:
    """MLflow HTTP calls in the block are tried once: marking a run FAILED after the server went away
    must not wait out a second round of retries before the real error is reported."""
    name = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
    before = os.environ.get(name)
    os.environ[name] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def redact_uri(uri: str) -> str:
    """The URI without its password (and any token in its query)."""
    return redact_text(uri)


def _is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file", "sqlite")


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a local sqlite file (no-op for other stores)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock  # flock on POSIX, msvcrt on Windows

    with FileLock(f"{db}.lock"):
        yield


def client() -> MlflowClient:
    """A client of the configured store, tracking and registry alike."""
    from mlflow import MlflowClient

    if "uri" not in _STATE:
        raise RuntimeError("dlops.tracking.configure(root, cfg) must be called first")
    return MlflowClient(_STATE["uri"], _STATE["uri"])


def experiment_id() -> str:
    """The id of the experiment `configure` set up (runs are created and searched in it)."""
    if "experiment_id" not in _STATE:
        raise RuntimeError("dlops.tracking.configure(root, cfg) must be called first")
    return _STATE["experiment_id"]
