"""Registration with gates: log and register the candidate's pyfunc once per checkpoint sha256, compare it
with the @champion on today's test rows, record every gate and the decision as version tags, a verdict
artifact and the model card, and move @champion / @previous only when it is promoted.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.gates import HEADLINE_PREFIXES, Decision, decide, judge_control
from dlops.params import GatesConfig, MlflowConfig
from dlops.redact import redact_text
from dlops.tracking import store
from dlops.tracking.lineage import package_version
from dlops.tracking.registry import model_name, version_by_alias, version_with_sha
from dlops.tracking.runs import TAG_MAX_CHARS, metric_key

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.pyfunc import PythonModel

log = logging.getLogger(__name__)


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
    python_model: type[PythonModel],
    tabular_signature: bool,
    extra_tags: dict[str, str],
    score_champion: Callable[[str], float] | None = None,
    paired: PairedRows | None = None,
    card: Callable[[dict[str, Any], dict[str, str]], dict[str, Any]] | None = None,
    control: str | None = None,
) -> dict[str, Any]:
    """Register the checkpoint as a version of `<prefix>-<pair>` (once per sha256), record every gate and
    the decision as version tags, a verdict artifact and the model card, and move @champion (old one to
    @previous) only if promoted.

    The version serves `python_model` (a dlops.serving class, chosen by the caller); with
    `tabular_signature` its input schema is taken from `raw_example` with integer columns as float64.

    The champion is compared on today's test rows: a paired test when `paired` is given and the gates
    ask for one (dlops.gates), else its primary metric within `promotion_tolerance`, re-scored by
    `score_champion(model_uri)` when it was scored on another test split (tag `data.test_split`).
    `card(report, tags)` returns the model card (dlops.model_card) for the description and artifact;
    `tags` are the version's (the training run's lineage plus this registration's). A `control` (the
    gate a control model was built to fail) is never promoted (dlops.gates.judge_control).
    """
    client = store.client()
    name = model_name(pair, cfg)
    existing = version_with_sha(client, name, model_sha256)
    champion = version_by_alias(client, name, "champion")

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
    caught = None if control is None else judge_control(decision, control)
    if control is not None:
        tags.update({"control": control, "control.caught": str(caught).lower()})
    tags.update(_decision_tags(decision, metrics))
    # a reason may quote a URL (a champion that could not be re-scored): no password reaches a tag
    tags = {metric_key(k): redact_text(str(v))[:TAG_MAX_CHARS] for k, v in tags.items()}

    if existing is None:
        version = _log_and_register(
            name, run_id, artifacts, raw_example, tags, python_model, tabular_signature
        )
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
        "control_caught": caught,  # None unless a control: whether the gate it was built to fail caught it
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
            key.startswith(HEADLINE_PREFIXES)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            tags[f"metric.{key}"] = repr(float(value))
    return tags


MODEL_CODE = """\
# The pyfunc's code (MLflow "models from code"): loading the model runs this file; nothing is unpickled.
import mlflow

from {module} import {name}

mlflow.models.set_model({name}())
"""


def _log_and_register(
    name: str,
    run_id: str,
    artifacts: dict[str, Path],
    raw_example: Any,
    tags: dict[str, str],
    python_model: type[PythonModel],
    tabular_signature: bool,
) -> str:
    """Log the pyfunc (checkpoint + transform + dlops code) into `run_id` and register it, READY."""
    import mlflow
    from mlflow.models import Model, infer_signature
    from mlflow.pyfunc import PythonModelContext

    files = {key: str(Path(path).resolve()) for key, path in artifacts.items()}
    example = _signature_frame(raw_example) if tabular_signature else raw_example
    local = python_model()
    local.load_context(PythonModelContext(files, None))
    signature = infer_signature(example, local.predict(None, example))
    # Model.log is what mlflow.pyfunc.log_model calls; it takes run_id, so the FINISHED training run is
    # not reopened (a crash here cannot leave it RUNNING or FAILED and unfindable by find_run). The
    # logged model goes to the fluent experiment, not the run's, so point that at the run's first.
    mlflow.set_experiment(experiment_id=mlflow.get_run(run_id).info.experiment_id)
    with tempfile.TemporaryDirectory(prefix="dlops-model-code-") as tmp:
        # models from code: the model is this file, run at load time (no pickled object is unpickled)
        entry = Path(tmp) / "dlops_model.py"
        entry.write_text(MODEL_CODE.format(module=python_model.__module__, name=python_model.__name__))
        info = Model.log(
            artifact_path=None,
            name="model",
            flavor=mlflow.pyfunc,
            flavor_name="pyfunc.CustomPythonModel",
            run_id=run_id,
            python_model=str(entry),
            artifacts=files,
            code_paths=[str(Path(__file__).resolve().parents[1])],  # the whole dlops package
            signature=signature,
            input_example=example,  # each kind keeps its example small (a forecaster needs lookback rows)
            pip_requirements=_pip_requirements(),
        )
    return _create_version(info.model_uri, name, tags)


def _create_version(model_uri: str, name: str, tags: dict[str, str]) -> str:
    """Register `model_uri` as a new version of `name` (tags set in the same call), tried once: a
    retried create whose first attempt reached the server but lost its answer would make a second
    version. After a transient failure the version is looked up by its checkpoint's sha256, and only
    created again when the first attempt left none."""
    import mlflow

    from dlops.errors import is_transient

    sha = tags["dlops.model_sha256"]
    try:
        with store.one_attempt():
            created = mlflow.register_model(model_uri, name, tags=tags, await_registration_for=300)
        return str(created.version)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("registering %s: %s; looking for the version before trying again", name, exc)
    existing = version_with_sha(store.client(), name, sha)  # retried with the usual bounds
    if existing is not None:
        return str(existing.version)
    return str(mlflow.register_model(model_uri, name, tags=tags, await_registration_for=300).version)


def _signature_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as float64: a later batch with a missing value must not break the schema."""
    import pandas as pd

    frame = raw.reset_index(drop=True).copy()
    for column in frame.columns:
        if pd.api.types.is_integer_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype("float64")
    return frame


SERVED_PACKAGES = ("pandas", "numpy", "pyarrow", "pydantic", "scikit-learn", "pyyaml", "mlflow")


def _pip_requirements() -> list[str]:
    """The served model's requirements.txt: exact versions of what its code imports, as installed here
    (from requirements/lock.txt). torch is the plain version: "2.13.0+cpu" is on no public index, and
    which build 2.13.0 resolves to (CPU or CUDA) is the serving machine's index's choice (docs/serving.md)."""
    torch = package_version("torch").split("+")[0]
    pinned = {name: package_version(name) for name in SERVED_PACKAGES}
    return [f"torch=={torch}", *(f"{name}=={v}" for name, v in pinned.items() if v != "absent")]
