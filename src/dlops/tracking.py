"""The only module that talks to MLflow: store set-up, lineage, training runs, evaluation logging,
registration with gates, and the @champion / @previous aliases.

Runs are found again by tags (`dlops.pair`, `dlops.model_sha256`), never by ids written to DVC outputs,
so those outputs stay byte-identical across reruns. Everything is logged in batches (one call per
metric costs ~9 ms on sqlite). mlflow is imported inside functions so the CLI starts fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import logging
import os
import platform
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from dlops.gates import Decision, decide
from dlops.params import GatesConfig, MlflowConfig
from dlops.redact import MASK, is_secret_key, redact_mapping, redact_text

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

PARAM_MAX_CHARS = 500
TAG_MAX_CHARS = 5000
MAX_DESCRIPTION = 5000  # what a model version description holds on the sqlite store
FLUSH_EVERY = 10  # epochs buffered between two log_batch calls
_BATCH_METRICS, _BATCH_PARAMS_TAGS = 1000, 100  # MLflow's per-request limits
_STATE: dict[str, str] = {}


# ------------------------------------------------------------------------------------------- store
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
    if urlparse(uri).scheme.split("+")[0] in DATABASE_SCHEMES:
        raise ValueError(
            f"MLFLOW_TRACKING_URI={_redact(uri)} points at a database directly: artifacts would be written "
            "under this machine's ./mlruns. Start a tracking server on it (make tracking-server) and set "
            "MLFLOW_TRACKING_URI=http://<host>:5000"
        )
    _STATE["target"] = uri  # named by the CLI if the server does not answer from here on
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
    return _redact(uri) if uri and not _is_local(uri) else None


@contextlib.contextmanager
def _one_attempt() -> Iterator[None]:
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


def _redact(uri: str) -> str:
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
    with open(f"{db}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _client() -> MlflowClient:
    from mlflow import MlflowClient

    if "uri" not in _STATE:
        raise RuntimeError("dlops.tracking.configure(root, cfg) must be called first")
    return MlflowClient(_STATE["uri"], _STATE["uri"])


# ----------------------------------------------------------------------------------------- lineage
def lineage_tags(root: Path, task: str, params_digest: str) -> dict[str, str]:
    """Where a model comes from: code commit, data version, params hash, pipeline run, library versions."""
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    tags = {
        "git.commit": commit or "unknown",
        "git.dirty": "unknown" if status is None else str(bool(status)).lower(),
        "data.version": _dvc_out_md5(root, f"ingest@{task}", f"data/raw/{task}.parquet"),
        "data.processed": _dvc_out_md5(root, f"preprocess@{task}", f"data/processed/{task}"),
        "data.batches": _accepted_batches(root, task),
        "params.hash": params_digest,
        "pipeline.run_id": os.environ.get("DLOPS_PIPELINE_RUN_ID", "manual"),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "mlflow": _version("mlflow"),
    }
    if flow_run := os.environ.get("PREFECT__FLOW_RUN_ID"):
        tags["prefect.flow_run_id"] = flow_run
    return tags


def _accepted_batches(root: Path, task: str) -> str:
    """The ids of the batches appended to the task's data (data/batches/<task>.json), oldest first."""
    try:
        manifest = json.loads((root / "data" / "batches" / f"{task}.json").read_text(encoding="utf-8"))
        ids = [str(entry["id"]) for entry in manifest["batches"]]
    except (OSError, ValueError, KeyError, TypeError):
        return "none"
    text = ",".join(ids) or "none"
    return text if len(text) <= 4000 else f"{len(ids)} batches, last {ids[-1]}"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _dvc_out_md5(root: Path, stage: str, out_path: str) -> str:
    import yaml

    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
        outs = lock["stages"][stage]["outs"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "untracked"
    for out in outs or []:
        if isinstance(out, dict) and out.get("path") == out_path and out.get("md5"):
            return str(out["md5"])
    return "untracked"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


# ---------------------------------------------------------------------------------------- training
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
                self._buffer.append(Metric(_metric_key(key), float(value), now, int(step)))
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
    return {_metric_key(k): str(v)[:TAG_MAX_CHARS] for k, v in redact_mapping(tags).items()}


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

    client = _client()
    run_tags = {
        **_tag_values(tags),
        "dlops.pair": pair,
        "dlops.task": task,
        "dlops.family": family,
    }
    run = client.create_run(_STATE["experiment_id"], tags=run_tags, run_name=run_name or pair)
    logger = RunLogger(client, run.info.run_id)
    try:
        flat = flatten_params(params)
        _log_batch(client, logger.run_id, params=[Param(k, v) for k, v in flat.items()])
        yield logger
        logger.flush()
    except BaseException as exc:
        # Best effort, one try each: when the server is what failed, the original error is the one to
        # report, and the run left RUNNING is found again by nothing (find_run wants FINISHED).
        with _one_attempt(), contextlib.suppress(Exception):
            logger.flush()  # keep the epochs that did finish
        with _one_attempt(), contextlib.suppress(Exception):
            client.set_terminated(logger.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    client.set_terminated(logger.run_id, "FINISHED")


def search_parent_run(
    pair: str, study: str, params: dict[str, Any], tags: dict[str, str], create: bool = True
) -> str:
    """The parent run of an Optuna study: the existing one tagged with this study (a resumed search, a
    worker joining from another process or machine), else (with `create`) a new RUNNING run
    `search:<pair>`; a joining worker that finds none raises LookupError."""
    from mlflow.entities import Param

    client = _client()
    found = client.search_runs(
        [_STATE["experiment_id"]],
        filter_string=f"tags.`dlops.search.study` = '{_quote(study)}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    if found:
        return str(found[0].info.run_id)
    if not create:
        import mlflow

        raise LookupError(
            f"no parent run of study {study!r} in the tracking store {_redact(mlflow.get_tracking_uri())}: "
            "a joining worker needs the main search's MLFLOW_TRACKING_URI"
        )
    run_tags = {**_tag_values(tags), "dlops.pair": pair, "dlops.search.study": study}
    run = client.create_run(_STATE["experiment_id"], tags=run_tags, run_name=f"search:{pair}")
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

    client = _client()
    now = int(time.time() * 1000)
    _log_batch(
        client,
        run_id,
        metrics=[Metric(_metric_key(k), float(v), now, 0) for k, v in sorted(metrics.items())],
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
    client = _client()
    runs = client.search_runs(
        [_STATE["experiment_id"]],
        filter_string=(
            f"tags.`dlops.pair` = '{_quote(pair)}' AND tags.`dlops.model_sha256` = '{_quote(model_sha256)}' "
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

    client = _client()
    now = int(time.time() * 1000)
    numbers, tags = [], []
    for key, value in metrics.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float):
            numbers.append(Metric(_metric_key(key), float(value), now, 0))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            tags.append(RunTag(_metric_key(f"eval.{key}"), text[:TAG_MAX_CHARS]))
    _log_batch(client, run_id, metrics=numbers, tags=tags)
    if artifact_dir.is_dir() and any(artifact_dir.iterdir()):
        client.log_artifacts(run_id, str(artifact_dir), "evaluation")


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

    client = _client()
    tags = {"pipeline.run_id": os.environ.get("DLOPS_PIPELINE_RUN_ID", "manual"), **redact_mapping(tags)}
    if flow_run := os.environ.get("PREFECT__FLOW_RUN_ID"):
        tags["prefect.flow_run_id"] = flow_run
    run_id = str(client.create_run(_STATE["experiment_id"], tags=tags, run_name=run_name).info.run_id)
    now = int(time.time() * 1000)
    _log_batch(
        client,
        run_id,
        metrics=[Metric(_metric_key(k), v, now, 0) for k, v in sorted(metrics.items())],
        params=[Param(k, v) for k, v in flatten_params(params or {}).items()],
    )
    for name, text in texts.items():
        client.log_text(run_id, text, name)
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return run_id


_INVALID_KEY = re.compile(r"[^\w\-. :/]")


def _metric_key(key: str) -> str:
    """MLflow accepts letters, digits, _ - . space : / in names; anything else becomes '_'."""
    return _INVALID_KEY.sub("_", str(key))


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


# ------------------------------------------------------------------------------------ registration
_METRIC_TAG_PREFIXES = ("test/", "fairness/max/", "overfit/")


def model_name(pair: str, cfg: MlflowConfig) -> str:
    return f"{cfg.model_prefix}-{pair}"


@dataclass
class PairedRows:
    """Today's test rows for a paired champion/challenger test: true classes, the candidate's decisions,
    and how to get a registered model's decisions on the same rows (class indices)."""

    y_true: Any
    candidate: Any
    predict: Callable[[str], Any]


def register(
    pair: str,
    run_id: str,
    model_sha256: str,
    metrics: dict[str, Any],
    gates: GatesConfig,
    cfg: MlflowConfig,
    artifacts: dict[str, Path],
    raw_example: Any,
    extra_tags: dict[str, str],
    score_champion: Callable[[str], float] | None = None,
    serving: str = "tabular",
    paired: PairedRows | None = None,
    card: Callable[[dict[str, Any], dict[str, str]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Register the checkpoint as a version of `<prefix>-<pair>` (once per sha256), record every gate and
    the decision as version tags, a verdict artifact and the model card, and move @champion (old one to
    @previous) only if promoted.

    The champion is compared on today's test rows: a paired test when `paired` is given and the gates
    ask for one (dlops.gates), else its primary metric within `promotion_tolerance`, re-scored by
    `score_champion(model_uri)` when it was scored on another test split (tag `data.test_split`).
    `card(report, tags)` returns the model card (dlops.model_card) for the description and artifact;
    `tags` are the version's (the training run's lineage plus this registration's).
    """
    client = _client()
    name = model_name(pair, cfg)
    existing = _version_with_sha(client, name, model_sha256)
    champion = _version_by_alias(client, name, "champion")

    tags = {k: v for k, v in client.get_run(run_id).data.tags.items() if not k.startswith("mlflow.")}
    tags.update(extra_tags)
    tags["dlops.model_sha256"] = model_sha256
    current = str(champion.version) if champion else None
    is_champion = existing is not None and str(existing.version) == current
    comparison, champion_primary, notes = None, None, list[str]()
    if champion is not None and not is_champion:
        comparison, notes = _paired_comparison(name, champion, gates, paired)
        if comparison is None:
            champion_primary, more = _champion_primary(
                name, champion, gates.primary_metric, tags.get("data.test_split"), score_champion
            )
            notes += more
    decision = decide(metrics, gates, champion_primary, current, comparison)
    decision.reasons[-1:-1] = notes  # after the gates, before the comparison
    if is_champion:  # re-registering the champion: it keeps the alias; say so instead of comparing
        # it stays champion: its verdict stays "promoted" unless it now fails a gate
        decision.promote, decision.verdict = False, "promoted" if decision.gates_passed else "rejected"
        decision.reasons[-1] = (
            f"this model is already champion v{current}"
            if decision.gates_passed
            else f"this model is champion v{current} but now fails a gate; it keeps @champion until "
            "another model is promoted"
        )
    tags.update(_decision_tags(decision, metrics))
    tags = {_metric_key(k): str(v)[:TAG_MAX_CHARS] for k, v in tags.items()}

    if existing is None:
        version = _log_and_register(name, run_id, artifacts, raw_example, tags, serving)
    else:
        version = str(existing.version)
        for key, value in tags.items():
            if existing.tags.get(key) != value:
                client.set_model_version_tag(name, version, key, value)
    report = {
        **decision.to_dict(),
        "model_name": name,
        "version": str(version),
        "run_id": run_id,
        "promoted": decision.promote,
        "current_champion": current,
    }
    _publish(client, report, card(report, tags) if card else None)

    # Aliases move last, so a champion always carries its reasons even after a crash mid-way.
    if decision.promote and current != version:
        if champion is not None:
            client.set_registered_model_alias(name, "previous", str(champion.version))
        client.set_registered_model_alias(name, "champion", version)
        current = version
    log.info("registered %s v%s: %s", name, version, decision.verdict)
    return {**report, "current_champion": current}


def _paired_comparison(
    name: str, champion: ModelVersion, gates: GatesConfig, paired: PairedRows | None
) -> tuple[dict[str, Any] | None, list[str]]:
    """The paired test of candidate vs champion on the same test rows, or None (and why) to fall back
    on the tolerance rule."""
    primary = gates.primary_metric
    if gates.promotion_test == "tolerance" or paired is None:
        return None, []
    if primary not in ("accuracy", "balanced_accuracy"):
        return None, [f"no paired test for {primary}: compared within promotion_tolerance"]
    who = f"champion v{champion.version}"
    try:
        theirs = paired.predict(f"models:/{name}/{champion.version}")
    except Exception as exc:  # an old champion that no longer loads must not block a good candidate
        log.warning("could not re-score %s of %s: %s", who, name, exc)
        return None, [f"{who} could not be re-scored on the current test rows ({type(exc).__name__}: {exc})"]
    from dlops.evaluation import uncertainty

    if gates.promotion_test == "mcnemar":
        result = uncertainty.mcnemar(paired.y_true, paired.candidate, theirs)
    else:
        result = uncertainty.paired_bootstrap(
            paired.y_true, paired.candidate, theirs, primary, confidence=gates.promotion_confidence
        )
    result["n"] = len(paired.y_true)
    result["verdict"] = uncertainty.verdict(result, gates.promotion_confidence)
    return result, []


def _publish(client: MlflowClient, report: dict[str, Any], card: dict[str, Any] | None) -> None:
    """The verdict as a JSON artifact of the version's run, and the model card as its description and
    an HTML artifact (the Markdown is trimmed to what a description holds)."""
    import tempfile
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name, version, run_id = report["model_name"], report["version"], report["run_id"]
    verdict = json.dumps(report, indent=2, sort_keys=True, default=str)
    client.log_text(run_id, verdict, f"verdicts/v{version}-{stamp}-{report['verdict']}.json")
    if card is None:
        reasons = "\n".join(f"- {reason}" for reason in report["reasons"])
        client.update_model_version(name, version, description=f"Decision: {report['verdict']}\n{reasons}\n")
        return
    from dlops.evaluation.card import write_card

    with tempfile.TemporaryDirectory() as tmp:
        html, markdown = write_card(card, Path(tmp))
        client.log_artifact(run_id, str(html), "model_card")
    client.update_model_version(name, version, description=markdown)


def _version_with_sha(client: MlflowClient, name: str, sha: str) -> ModelVersion | None:
    found = client.search_model_versions(f"name = '{_quote(name)}' AND tags.`dlops.model_sha256` = '{sha}'")
    return min(found, key=lambda mv: int(mv.version)) if found else None


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # sqlite answers a missing alias with INVALID_PARAMETER_VALUE "... alias champion not found."
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc):
            return None
        raise


def _champion_primary(
    name: str,
    champion: ModelVersion | None,
    primary: str,
    test_split: str | None,
    score_champion: Callable[[str], float] | None,
) -> tuple[float | None, list[str]]:
    """The champion's primary metric on the candidate's test split, and sentences saying how it was got."""
    if champion is None:
        return None, []
    who, key = f"champion v{champion.version}", f"metric.test/{primary}"
    if test_split and champion.tags.get("data.test_split") == test_split and key in champion.tags:
        return float(champion.tags[key]), []
    if score_champion is None:
        return None, [
            f"{who} was scored on another test split and no scorer was given, so it was not compared"
        ]
    try:
        value = float(score_champion(f"models:/{name}/{champion.version}"))
    except Exception as exc:  # an old champion that no longer loads must not block a good candidate
        log.warning("could not re-score %s of %s: %s", who, name, exc)
        return None, [
            f"{who} could not be re-scored on the current test split ({type(exc).__name__}: {exc}), "
            "so it was not compared"
        ]
    return value, [f"{who} was re-scored on the current test split: test/{primary} = {value:.3f}"]


def _decision_tags(decision: Decision, metrics: dict[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for check in decision.checks:
        tags[f"gate.{check.name}.value"] = "missing" if check.value is None else repr(check.value)
        tags[f"gate.{check.name}.limit"] = repr(check.limit)
        tags[f"gate.{check.name}.passed"] = str(check.passed).lower()
    tags["decision"] = decision.verdict
    tags["decision.by"] = "pipeline"
    tags["decision.reasons"] = "; ".join(decision.reasons)
    for key, value in (decision.comparison or {}).items():
        if key in ("method", "metric", "difference", "ci_low", "ci_high", "p_value", "verdict", "b", "c"):
            tags[f"comparison.{key}"] = str(value)
    for key, value in metrics.items():
        if (
            key.startswith(_METRIC_TAG_PREFIXES)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            tags[f"metric.{key}"] = repr(float(value))
    return tags


def _log_and_register(
    name: str,
    run_id: str,
    artifacts: dict[str, Path],
    raw_example: Any,
    tags: dict[str, str],
    serving: str = "tabular",
) -> str:
    """Log the pyfunc (checkpoint + transform + dlops code) into `run_id` and register it, READY."""
    import mlflow
    from mlflow.models import Model, infer_signature
    from mlflow.pyfunc import PythonModelContext

    from dlops.serving import SERVING_CLASSES

    files = {key: str(Path(path).resolve()) for key, path in artifacts.items()}
    python_model = SERVING_CLASSES[serving]
    example = _signature_frame(raw_example) if serving == "tabular" else raw_example
    local = python_model()
    local.load_context(PythonModelContext(files, None))
    signature = infer_signature(example, local.predict(None, example))
    # Model.log is what mlflow.pyfunc.log_model calls; it takes run_id, so the FINISHED training run is
    # not reopened (a crash here cannot leave it RUNNING or FAILED and unfindable by find_run). The
    # logged model goes to the fluent experiment, not the run's, so point that at the run's first.
    mlflow.set_experiment(experiment_id=mlflow.get_run(run_id).info.experiment_id)
    info = Model.log(
        artifact_path=None,
        name="model",
        flavor=mlflow.pyfunc,
        flavor_name="pyfunc.CustomPythonModel",
        run_id=run_id,
        python_model=python_model(),
        artifacts=files,
        code_paths=[str(Path(__file__).resolve().parent)],
        signature=signature,
        input_example=example[:5],
        pip_requirements=_pip_requirements(),
    )
    version = mlflow.register_model(info.model_uri, name, tags=tags, await_registration_for=300)
    return str(version.version)


def _signature_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as float64: a later batch with a missing value must not break the schema."""
    import pandas as pd

    frame = raw.reset_index(drop=True).copy()
    for column in frame.columns:
        if pd.api.types.is_integer_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype("float64")
    return frame


def _pip_requirements() -> list[str]:
    torch = _version("torch").split("+")[0]  # "2.13.0+cpu" is not on PyPI; the plain version is
    return [f"torch=={torch}", "pandas", "numpy", "pyarrow", "pydantic", f"mlflow=={_version('mlflow')}"]


def champion_info(pair: str, cfg: MlflowConfig) -> dict[str, Any] | None:
    """The @champion of a pair: model name, version, run id and tags; None if there is none."""
    name = model_name(pair, cfg)
    champion = _version_by_alias(_client(), name, "champion")
    if champion is None:
        return None
    return {
        "model_name": name,
        "version": str(champion.version),
        "run_id": champion.run_id,
        "uri": f"models:/{name}@champion",
        "tags": dict(champion.tags),
    }


def load_champion(pair: str, cfg: MlflowConfig) -> Any:
    """The @champion as an MLflow pyfunc: `.predict(raw_frame)` -> prediction + proba_<class> columns;
    its checkpoint is checked against the version's sha256 first (`load_registered`)."""
    info = champion_info(pair, cfg)
    if info is None:
        raise LookupError(f"{model_name(pair, cfg)} has no @champion yet; run `dlops register {pair}`")
    return load_registered(f"models:/{info['model_name']}/{info['version']}")


class ModelIntegrityError(RuntimeError):
    """A registered version's checkpoint is not the one registered (its sha256 differs from the version's
    `dlops.model_sha256` tag), or the version has no such tag to check it against."""


_VERSION_URI = re.compile(r"^models:/(?P<name>[A-Za-z0-9_.-]+)/(?P<version>\d+)$")


def load_registered(model_uri: str) -> Any:
    """The pyfunc of `models:/<name>/<version>` in the configured registry, loaded only after its
    checkpoint's sha256 matched the version's `dlops.model_sha256` tag. Downloaded once into a new
    directory and loaded from there, so what was checked is what is loaded."""
    import tempfile

    import mlflow

    found = _VERSION_URI.match(model_uri)
    if found is None:
        raise ValueError(f"{model_uri!r}: only models:/<name>/<version> of the project's registry load here")
    version = _client().get_model_version(found["name"], found["version"])
    local = Path(tempfile.mkdtemp(prefix="dlops-model-"))  # kept: the pyfunc imports its code from here
    mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(local))
    verify_checkpoint(model_uri, version, local / _checkpoint_relative(local / "MLmodel", model_uri))
    return mlflow.pyfunc.load_model(str(local))


def verify_checkpoint(uri: str, version: ModelVersion, checkpoint: Path) -> None:
    """Raise ModelIntegrityError naming the version unless `checkpoint` hashes to its registered sha256."""
    from dlops.training.checkpoint import file_sha256

    expected = version.tags.get("dlops.model_sha256")
    if not expected:
        raise ModelIntegrityError(
            f"{uri} (v{version.version}) has no dlops.model_sha256 tag: its checkpoint cannot be verified, "
            "so it is not loaded"
        )
    actual = file_sha256(checkpoint)
    if actual != expected:
        raise ModelIntegrityError(
            f"{uri} (v{version.version}): checkpoint {checkpoint.name} has sha256 {actual}, "
            f"but the version was registered with dlops.model_sha256 {expected}; refusing to load a "
            "tampered or corrupt model"
        )


def _checkpoint_relative(mlmodel: Path, uri: str) -> str:
    """Where the pyfunc keeps its `checkpoint` artifact, from its MLmodel file."""
    import yaml

    spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    artifacts = spec.get("flavors", {}).get("python_function", {}).get("artifacts") or {}
    relative = (artifacts.get("checkpoint") or {}).get("path")
    if not relative:
        raise LookupError(f"{uri} has no `checkpoint` artifact: not a dlops model")
    return str(relative)


def champion_checkpoint(pair: str, cfg: MlflowConfig, dst: Path) -> tuple[dict[str, Any], Path] | None:
    """The @champion's checkpoint (`registered_checkpoint`), or None when the pair has no @champion."""
    return registered_checkpoint(f"models:/{model_name(pair, cfg)}@champion", dst)


_ALIAS_URI = re.compile(r"^models:/(?P<name>[A-Za-z0-9_.-]+)@(?P<alias>[A-Za-z0-9_-]+)$")


def registered_checkpoint(uri: str, dst: Path) -> tuple[dict[str, Any], Path] | None:
    """Download the checkpoint of `models:/<name>@<alias>` or `models:/<name>/<version>` (the pyfunc's
    `checkpoint` artifact, `artifacts/model.pt` under the logged model) into `dst`, its sha256 checked
    against the version's `dlops.model_sha256` (ModelIntegrityError otherwise); returns (who it is, the
    local file), or None when no such alias or version exists. Errors reaching the store propagate: a
    warm start must not silently start cold."""
    import mlflow

    by_alias, by_version = _ALIAS_URI.match(uri), _VERSION_URI.match(uri)
    if by_alias is not None:
        name, found = by_alias["name"], _version_by_alias(_client(), by_alias["name"], by_alias["alias"])
    elif by_version is not None:
        name, found = by_version["name"], _version_by_number(by_version["name"], by_version["version"])
    else:
        raise ValueError(f"{uri!r}: use models:/<name>@<alias> or models:/<name>/<version>")
    if found is None:
        return None
    version_uri = f"models:/{name}/{found.version}"
    mlmodel = mlflow.artifacts.download_artifacts(artifact_uri=f"{version_uri}/MLmodel", dst_path=str(dst))
    relative = _checkpoint_relative(Path(mlmodel), f"{version_uri} ({uri})")
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"{version_uri}/{relative}", dst_path=str(dst))
    verify_checkpoint(version_uri, found, Path(local))  # before anyone loads it
    info = {
        "model_name": name,
        "version": str(found.version),
        "uri": version_uri,
        "run_id": found.run_id,
        "model_sha256": found.tags.get("dlops.model_sha256"),
    }
    return info, Path(local)


def _version_by_number(name: str, version: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc):
            return None
        raise
