"""The model registry: model names, versions by sha256, alias or number, the @champion (its info, its
pyfunc, its checkpoint), and the sha256 check every registered checkpoint passes before it is loaded.
"""

from __future__ import annotations

import atexit
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.errors import DlopsError
from dlops.params import MlflowConfig
from dlops.tracking import store
from dlops.tracking.runs import quote

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

MAX_DESCRIPTION = 5000  # what a model version description holds on the sqlite store


def model_name(pair: str, cfg: MlflowConfig) -> str:
    """The registered model of a pair: `<model_prefix>-<pair>`."""
    return f"{cfg.model_prefix}-{pair}"


def version_with_sha(client: MlflowClient, name: str, sha: str) -> ModelVersion | None:
    """The first version of `name` registered from the checkpoint with this sha256, or None."""
    found = client.search_model_versions(f"name = '{quote(name)}' AND tags.`dlops.model_sha256` = '{sha}'")
    return min(found, key=lambda mv: int(mv.version)) if found else None


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version of `name` holding `alias` (champion, previous), or None when no version does."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # sqlite answers a missing alias with INVALID_PARAMETER_VALUE "... alias champion not found."
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc):
            return None
        raise


def champion_info(pair: str, cfg: MlflowConfig) -> dict[str, Any] | None:
    """The @champion of a pair: model name, version, run id and tags; None if there is none."""
    name = model_name(pair, cfg)
    champion = version_by_alias(store.client(), name, "champion")
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


class ModelIntegrityError(DlopsError, RuntimeError):
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
    version = store.client().get_model_version(found["name"], found["version"])
    local = Path(tempfile.mkdtemp(prefix="dlops-model-"))  # the pyfunc imports its code from here
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(local))
        verify_checkpoint(model_uri, version, local / _checkpoint_relative(local / "MLmodel", model_uri))
        model = mlflow.pyfunc.load_model(str(local))
    except BaseException:
        shutil.rmtree(local, ignore_errors=True)
        raise
    atexit.register(shutil.rmtree, local, ignore_errors=True)  # kept while this process may use it
    return model


def verify_checkpoint(uri: str, version: ModelVersion, checkpoint: Path) -> None:
    """Raise ModelIntegrityError naming the version unless `checkpoint` hashes to its registered sha256."""
    from dlops.files import file_sha256

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
        name, found = by_alias["name"], version_by_alias(store.client(), by_alias["name"], by_alias["alias"])
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
        return store.client().get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc):
            return None
        raise
