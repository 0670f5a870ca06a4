"""MLflow runs: training runs with batched epoch metrics, a search's parent run, evaluation results, report
runs, and finding a run again by the sha256 of the checkpoint it produced.

Runs are found again by tags (`dlops.pair`, `dlops.model_sha256`), never by ids written to DVC outputs,
so those outputs stay byte-identical across reruns. Everything is logged in batches (one call per
metric costs ~9 ms on sqlite).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.redact import MASK, is_secret_key, redact_mapping, redact_text
from dlops.tracking import store
from dlops.tracking.lineage import source_tags
from dlops.workspace import alive

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow import MlflowClient

PARAM_MAX_CHARS = 500
TAG_MAX_CHARS = 5000
FLUSH_EVERY = 10  # epochs buffered between two log_batch calls
_BATCH_METRICS, _BATCH_PARAMS_TAGS = 1000, 100  # MLflow's per-request limits


class RunLogger:
    """Buffers epoch metrics and writes them with one log_batch every FLUSH_EVERY epochs and at exit."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self._client = client
        self.run_id = run_id
        self._buffer: list[Any] = []
        self._epochs = 0

    def log_epoch(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in metrics.items():
            if value is not None and not isinstance(value, str):
                self._buffer.append(Metric(metric_key(key), float(value), now, int(step)))
        self._epochs += 1
        if self._epochs % FLUSH_EVERY == 0:
            self.flush()

    def flush(self) -> None:
        buffer, self._buffer = self._buffer, []
        _log_batch(self._client, self.run_id, metrics=buffer)

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        _log_batch(
            self._client,
            self.run_id,
            tags=[RunTag(k, v) for k, v in _tag_values(tags).items()],
        )


def _tag_values(tags: dict[str, Any]) -> dict[str, str]:
    """Tags as MLflow takes them: secrets masked (dlops.redact), names made valid, values as strings of at
    most TAG_MAX_CHARS characters."""
    return {metric_key(k): str(v)[:TAG_MAX_CHARS] for k, v in redact_mapping(tags).items()}


@contextlib.contextmanager
def training_run(
    pair: str,
    task: str,
    family: str,
    params: dict[str, Any],
    tags: dict[str, str],
    run_name: str | None = None,
) -> Iterator[RunLogger]:
    """An MLflow run named `run_name` (default `pair`) with identity tags and flattened params; FAILED if
    the block raises. A search trial passes `mlflow.parentRunId` in `tags` to nest under its study."""
    from mlflow.entities import Param

    client = store.client()
    run_tags = {
        **source_tags(store.project_root()),
        **_tag_values(tags),
        "dlops.pair": pair,
        "dlops.task": task,
        "dlops.family": family,
        "dlops.host": socket.gethostname(),
        "dlops.pid": str(os.getpid()),
    }
    _end_orphans(client, pair)
    run = client.create_run(store.experiment_id(), tags=run_tags, run_name=run_name or pair)
    logger = RunLogger(client, run.info.run_id)
    try:
        flat = flatten_params(params)
        _log_batch(client, logger.run_id, params=[Param(k, v) for k, v in flat.items()])
        if inputs := data_inputs(task, run_tags, "training"):
            client.log_inputs(logger.run_id, datasets=inputs)
        yield logger
        logger.flush()
    except BaseException as exc:
        # Best effort, one try each: when the server is what failed, the original error is the one to
        # report, and the run left RUNNING is found again by nothing (find_run wants FINISHED).
        with store.one_attempt(), contextlib.suppress(Exception):
            logger.flush()  # keep the epochs that did finish
        with store.one_attempt(), contextlib.suppress(Exception):
            client.set_terminated(logger.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    client.set_terminated(logger.run_id, "FINISHED")


def _end_orphans(client: Any, pair: str) -> list[str]:
    """Mark KILLED the pair's runs left RUNNING by a process of this host that no longer exists (killed
    by SIGKILL, the OOM killer or a lost machine, it could not end its own run). Returns their ids."""
    host = socket.gethostname()
    query = f"tags.`dlops.pair` = '{pair}' and tags.`dlops.host` = '{host}' and attributes.status = 'RUNNING'"
    ended = []
    for run in client.search_runs([store.experiment_id()], filter_string=query, max_results=100):
        pid = run.data.tags.get("dlops.pid", "")
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            client.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
    if ended:
        log.warning(
            "%s: ended %d run(s) left RUNNING by a killed process as KILLED: %s", pair, len(ended), ended
        )
    return ended


def search_parent_run(
    pair: str, study: str, params: dict[str, Any], tags: dict[str, str], create: bool = True
) -> str:
    """The parent run of an Optuna study: the existing one tagged with this study (a resumed search, a
    worker joining from another process or machine), else (with `create`) a new RUNNING run
    `search:<pair>`; a joining worker that finds none raises LookupError."""
    from mlflow.entities import Param

    client = store.client()
    found = client.search_runs(
        [store.experiment_id()],
        filter_string=f"tags.`dlops.search.study` = '{quote(study)}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    if found:
        return str(found[0].info.run_id)
    if not create:
        import mlflow

        raise LookupError(
            f"no parent run of study {study!r} in the tracking store "
            f"{store.redact_uri(mlflow.get_tracking_uri())}: "
            "a joining worker needs the main search's MLFLOW_TRACKING_URI"
        )
    run_tags = {**source_tags(store.project_root()), **_tag_values(tags), "dlops.pair": pair}
    run_tags["dlops.search.study"] = study
    run = client.create_run(store.experiment_id(), tags=run_tags, run_name=f"search:{pair}")
    flat = flatten_params(params)
    _log_batch(client, run.info.run_id, params=[Param(k, v) for k, v in flat.items()])
    return str(run.info.run_id)


def finish_search_run(
    run_id: str, metrics: dict[str, float], tags: dict[str, str], artifact_dir: Path
) -> None:
    """The study's summary on its parent run: numbers as metrics, best parameters and counts as tags
    (tags, not params: a larger budget later continues the study and may find better values), and the
    files of `artifact_dir` (plots, trials table) under search/."""
    from mlflow.entities import Metric, RunTag

    client = store.client()
    now = int(time.time() * 1000)
    _log_batch(
        client,
        run_id,
        metrics=[Metric(metric_key(k), float(v), now, 0) for k, v in sorted(metrics.items())],
        tags=[RunTag(k, v) for k, v in sorted(_tag_values(tags).items())],
    )
    if artifact_dir.is_dir() and any(artifact_dir.iterdir()):
        client.log_artifacts(run_id, str(artifact_dir), "search")
    client.set_terminated(run_id, "FINISHED")


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"train": {"lr": 0.01}} -> {"train.lr": "0.01"}; values as strings of at most 500 characters.
    Secrets are masked (dlops.redact): a secret-looking key's value, a URL's password, a token."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if is_secret_key(name):
            flat[name] = MASK
        elif isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = redact_text(str(value))[:PARAM_MAX_CHARS]
    return flat


def find_run(pair: str, model_sha256: str) -> str | None:
    """The newest FINISHED run of `pair` that produced the checkpoint with this sha256, or None."""
    client = store.client()
    runs = client.search_runs(
        [store.experiment_id()],
        filter_string=(
            f"tags.`dlops.pair` = '{quote(pair)}' AND tags.`dlops.model_sha256` = '{quote(model_sha256)}' "
            "AND attributes.status = 'FINISHED'"
        ),
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0].info.run_id if runs else None


# -------------------------------------------------------------------------------------- evaluation
def log_evaluation(run_id: str, metrics: dict[str, Any], artifact_dir: Path) -> None:
    """Numbers (bools as 0/1) as metrics in batches, anything else as `eval.<key>` tags, None skipped;
    every file of `artifact_dir` under evaluation/."""
    from mlflow.entities import Metric, RunTag

    client = store.client()
    run_tags = client.get_run(run_id).data.tags
    if inputs := data_inputs(run_tags.get("dlops.task", ""), run_tags, "evaluation"):
        client.log_inputs(run_id, datasets=inputs)
    now = int(time.time() * 1000)
    numbers, tags = [], []
    for key, value in metrics.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float):
            numbers.append(Metric(metric_key(key), float(value), now, 0))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            tags.append(RunTag(metric_key(f"eval.{key}"), text[:TAG_MAX_CHARS]))
    _log_batch(client, run_id, metrics=numbers, tags=tags)
    if artifact_dir.is_dir() and any(artifact_dir.iterdir()):
        client.log_artifacts(run_id, str(artifact_dir), "evaluation")


def data_inputs(task: str, tags: dict[str, str], context: str) -> list[Any]:
    """The run's data as MLflow datasets (the UI's Datasets column and view), named as DVC names them
    and with their DVC md5 from dvc.lock as the digest (the lineage tags `data.version`,
    `data.processed`): for `training` the task's raw table and processed splits, for `evaluation` the
    processed splits' test split (`data/processed/<task>#test`)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    processed = f"data/processed/{task}"
    named = [("data.processed", f"{processed}#test")]
    if context == "training":
        named = [("data.version", f"data/raw/{task}.parquet"), ("data.processed", processed)]
    found = []
    for key, name in named:
        digest = tags.get(key, "")
        if digest in ("", "unknown", "untracked") or len(digest) > 36:  # MLflow keeps 36 characters
            continue
        source = json.dumps({"uri": name.split("#")[0], "dvc_md5": digest})
        dataset = Dataset(name=name, digest=digest, source_type="local", source=source)
        found.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    return found


def _log_batch(
    client: MlflowClient,
    run_id: str,
    metrics: Sequence[Any] = (),
    params: Sequence[Any] = (),
    tags: Sequence[Any] = (),
) -> None:
    """log_batch split at MLflow's per-request limits (1000 metrics, 100 params, 100 tags)."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        client.log_batch(
            run_id,
            metrics=metrics[:_BATCH_METRICS],
            params=params[:_BATCH_PARAMS_TAGS],
            tags=tags[:_BATCH_PARAMS_TAGS],
            synchronous=True,
        )
        metrics, params, tags = (
            metrics[_BATCH_METRICS:],
            params[_BATCH_PARAMS_TAGS:],
            tags[_BATCH_PARAMS_TAGS:],
        )


def log_report_run(
    run_name: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    texts: dict[str, str],
    params: dict[str, Any] | None = None,
    files: Sequence[Path] = (),
) -> str:
    """One finished MLflow run recording a report (the leaderboard, a drift check, a study) in the
    configured experiment: the pipeline and Prefect run ids as tags beside `tags`, `params` (flattened)
    and `metrics` in batches, each of `texts` as a text artifact under its name and each of `files` as
    an artifact. Returns the run id."""
    from mlflow.entities import Metric, Param

    client = store.client()
    tags = {
        **source_tags(store.project_root()),
        "pipeline.run_id": os.environ.get("DLOPS_PIPELINE_RUN_ID", "manual"),
        **redact_mapping(tags),
    }
    if flow_run := os.environ.get("PREFECT__FLOW_RUN_ID"):
        tags["prefect.flow_run_id"] = flow_run
    run_id = str(client.create_run(store.experiment_id(), tags=tags, run_name=run_name).info.run_id)
    now = int(time.time() * 1000)
    _log_batch(
        client,
        run_id,
        metrics=[Metric(metric_key(k), v, now, 0) for k, v in sorted(metrics.items())],
        params=[Param(k, v) for k, v in flatten_params(params or {}).items()],
    )
    for name, text in texts.items():
        client.log_text(run_id, text, name)
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return run_id


_INVALID_KEY = re.compile(r"[^\w\-. :/]")


def metric_key(key: str) -> str:
    """MLflow accepts letters, digits, _ - . space : / in names; anything else becomes '_'."""
    return _INVALID_KEY.sub("_", str(key))


def quote(value: str) -> str:
    """`value` escaped for a '...' literal in an MLflow search filter."""
    return value.replace("'", "\\'")
