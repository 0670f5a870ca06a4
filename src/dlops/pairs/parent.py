"""Where a warm start's weights come from (`train.init_from`): the model's own @champion, a registered
version (its sha256 checked against the registry) or a checkpoint file inside the project; and the
warm start itself, with the lineage tags the training run records.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from dlops.params import MlflowConfig, TrainConfig
from dlops.training.transfer import Parent, TransferError, check_freeze, log_transfer, transfer_weights

log = logging.getLogger(__name__)

SKIPPED_TAG_CHARS = 500


def fetch_parent(
    init_from: str, *, pair: str, mlflow_cfg: MlflowConfig, root: Path, dst: Path
) -> Parent | None:
    """The parent `init_from` names, downloaded into `dst` and sha256-checked when registered; None
    only for `champion` when the pair has none yet. A named source that does not exist is an error."""
    from dlops import tracking
    from dlops.files import file_sha256
    from dlops.training.checkpoint import CheckpointError, load_safe

    where = f"models.{pair}.train.init_from"
    if init_from == "champion" or init_from.startswith("models:/"):
        if init_from == "champion":
            found = tracking.champion_checkpoint(pair, mlflow_cfg, dst)
        else:
            found = tracking.registered_checkpoint(init_from, dst)
        if found is None:
            if init_from == "champion":
                return None
            raise TransferError(
                f"{where}: {init_from} is not in the model registry (no such alias or version)"
            )
        info, path = found
        ckpt = load_safe(path)
        return Parent(
            info["uri"], init_from, str(ckpt.get("family")), ckpt, str(info["model_sha256"]), info["run_id"]
        )
    path = root / init_from
    try:
        ckpt = load_safe(path)
    except CheckpointError as exc:
        raise TransferError(f"{where}: {exc}") from None
    if "state_dict" not in ckpt or "family" not in ckpt:
        raise TransferError(f"{where}: {init_from} is not a model checkpoint (a resume file? use model.pt)")
    return Parent(init_from, init_from, str(ckpt["family"]), ckpt, file_sha256(path))


def warm_start(
    model: nn.Module,
    *,
    pair: str,
    family: str,
    train: TrainConfig,
    mlflow_cfg: MlflowConfig,
    root: Path,
    dst: Path,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Initialise `model` from `train.init_from`; returns the training run's lineage tags and the
    checkpoint's `init_from`. `champion` with no champion yet, or one of another family, trains from
    scratch with a warning (as it always did); an explicit source that is missing or does not fit is an
    error. `train.freeze` prefixes are checked against the model here, naming the model."""
    assert train.init_from is not None
    check_freeze(model, train.freeze, f"models.{pair}.train.freeze")
    parent = fetch_parent(train.init_from, pair=pair, mlflow_cfg=mlflow_cfg, root=root, dst=dst)
    if parent is None:
        from dlops import tracking

        name = tracking.model_name(pair, mlflow_cfg)
        log.warning("init_from: champion, but %s has no @champion yet; training from scratch", name)
        return {"init_from": "none (no champion yet)"}, {"uri": None, "note": "no champion yet"}
    if train.init_from == "champion" and parent.family != family:
        note = f"{parent.uri} is a {parent.family} model, this is {family}"
        log.warning("init_from: champion, but %s; training from scratch", note)
        return {"init_from": f"none ({note})"}, {"uri": None, "note": note}
    done = transfer_weights(model, family, parent, f"models.{pair}.train.init_from")
    log_transfer(parent, done)
    skipped = ",".join(done.skipped)
    if len(skipped) > SKIPPED_TAG_CHARS:
        skipped = skipped[: SKIPPED_TAG_CHARS - 3] + "..."
    tags = {
        "init_from": parent.uri,
        "init_from.requested": parent.requested,
        "init_from.run_id": str(parent.run_id),
        "init_from.family": parent.family,
        "init_from.loaded_tensors": str(len(done.loaded)),
        "init_from.skipped": skipped,
        "dlops.parent_model": parent.lineage,
    }
    meta: dict[str, Any] = {
        "uri": parent.uri,
        "requested": parent.requested,
        "run_id": parent.run_id,
        "family": parent.family,
        "model_sha256": parent.model_sha256,
        "loaded_tensors": len(done.loaded),
        "skipped": list(done.skipped),
    }
    if done.mapped is not None:
        meta["mapped"] = done.mapped
    return tags, meta
