"""Transfer learning: where a warm start's weights come from, how they land in the model, what trains.

`train.init_from` names the parent: the model's own @champion, a registered version
(`models:/<name>@<alias>` or `models:/<name>/<version>`, its sha256 checked against the registry), or a
checkpoint file inside the project. Tensors of the same name and shape are copied (`load_matching`);
the others keep their fresh initialisation and are reported (a head for a new number of classes).
An autoencoder's or VAE's encoder initialises a CNN: encoder stage i (conv + BatchNorm) goes to the
first conv + BatchNorm of the CNN's block i, so a classifier on few labels starts from features learned
on images. `train.freeze` keeps parameters as loaded; `train.head_lr` gives the `head` its own rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlops.errors import DlopsError
from dlops.params import MlflowConfig, TrainConfig
from dlops.training.checkpoint import WarmStart, load_matching

log = logging.getLogger(__name__)

ENCODER_FAMILIES = ("autoencoder", "vae")
SKIPPED_TAG_CHARS = 500


class TransferError(DlopsError, ValueError):
    """A warm start cannot be done as configured; the message names the key and the model."""


@dataclass
class Parent:
    """A warm start's parent: which model it is and its checkpoint (a dlops.checkpoint/1 dict)."""

    uri: str  # models:/<name>/<version>, or the checkpoint's path relative to the project
    requested: str  # what `init_from` said (champion, an alias URI, ...)
    family: str
    checkpoint: dict[str, Any]
    model_sha256: str
    run_id: str | None = None

    @property
    def lineage(self) -> str:
        """The `dlops.parent_model` tag: what the parent is and the sha256 of its file."""
        return f"{self.uri} sha256:{self.model_sha256}"


# ------------------------------------------------------------------------------------------- sources
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


# ------------------------------------------------------------------------------------------- loading
@dataclass
class Transfer(WarmStart):
    """`WarmStart` plus, for an encoder put into a CNN, which parent tensor went where (cnn <- parent)."""

    mapped: dict[str, str] | None = None


def transfer_weights(model: nn.Module, family: str, parent: Parent, where: str) -> Transfer:
    """Copy the parent's tensors into `model`: same family by name and shape; an autoencoder's or VAE's
    encoder into a CNN stage by stage. Any other pair of families is an error naming both."""
    state = parent.checkpoint["state_dict"]
    if parent.family == family:
        done = load_matching(model, state)
        return Transfer(done.loaded, done.skipped, done.unused)
    if parent.family in ENCODER_FAMILIES and family == "cnn":
        renamed, mapped, unmapped = encoder_into_cnn(model, parent.checkpoint)
        done = load_matching(model, renamed)
        return Transfer(done.loaded, done.skipped, unmapped, mapped)
    raise TransferError(
        f"{where}: {parent.uri} is a {parent.family} model and this one a {family}; a warm start needs the "
        f"same family, or an {' or '.join(ENCODER_FAMILIES)} encoder for a cnn"
    )


def encoder_into_cnn(
    cnn: nn.Module, parent_ckpt: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """The encoder's tensors renamed onto the CNN: stage i's conv and BatchNorm (weights and running
    statistics) under the names of the first conv and BatchNorm of block i. Returns (renamed tensors,
    cnn name -> parent name, parent tensors with no place). Stages beyond the CNN's blocks stay unused;
    shapes are checked by `load_matching` (channels must agree)."""
    from dlops.models.registry import build_model

    with torch.random.fork_rng(devices=[]):  # built only for its module names: the seed stays untouched
        parent = build_model(
            parent_ckpt["family"],
            input_shape=tuple(parent_ckpt["input_shape"]),
            num_classes=parent_ckpt["num_classes"],
            config=parent_ckpt["model_config"],
        )
    encoder, body = getattr(parent, "encoder", None), getattr(cnn, "body", None)
    if not isinstance(encoder, nn.Module) or not isinstance(body, nn.Module):
        raise TransferError(f"a {parent_ckpt['family']} encoder goes into a CNN's `body` only")
    state = parent_ckpt["state_dict"]
    renamed: dict[str, torch.Tensor] = {}
    mapped: dict[str, str] = {}
    pairs = zip(_conv_bn(encoder, every_conv=True), _conv_bn(body, every_conv=False), strict=False)
    for theirs, ours in pairs:
        for their_layer, our_layer in zip(theirs, ours, strict=True):
            source, target = f"encoder.{their_layer}.", f"body.{our_layer}."
            for key, tensor in state.items():
                if key.startswith(source):
                    renamed[target + key[len(source) :]] = tensor
                    mapped[target + key[len(source) :]] = key
    unmapped = [key for key in state if key not in set(mapped.values())]
    return renamed, mapped, unmapped


def _conv_bn(layers: nn.Module, every_conv: bool) -> list[tuple[str, str]]:
    """(conv, BatchNorm) child names of each stage: every conv followed by a BatchNorm (an encoder), or
    only the first of each block, blocks ending at a Dropout2d (the CNN's body)."""
    found: list[tuple[str, str]] = []
    conv, open_block = None, True
    for name, module in layers.named_children():
        if isinstance(module, nn.Dropout2d):
            open_block = True
        elif isinstance(module, nn.Conv2d) and open_block:
            conv = name
        elif isinstance(module, nn.BatchNorm2d) and conv is not None:
            found.append((conv, name))
            conv, open_block = None, every_conv
    return found


# -------------------------------------------------------------------------------------- warm start
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


def log_transfer(parent: Parent, done: Transfer) -> None:
    log.info("init_from %s (run %s): loaded %d tensors", parent.uri, parent.run_id, len(done.loaded))
    fresh = [f"{key} ({why})" for key, why in done.skipped.items() if not why.startswith("absent")]
    if fresh:  # another shape: e.g. a head for a new number of classes
        log.warning("init_from %s: fresh tensors of another shape: %s", parent.uri, ", ".join(fresh))
    absent = [key for key, why in done.skipped.items() if why.startswith("absent")]
    if absent:
        log.info(
            "init_from %s: kept as initialised (absent from the parent): %s", parent.uri, ", ".join(absent)
        )
    if done.unused:
        log.info("init_from %s: unused parent tensors %s", parent.uri, ", ".join(done.unused))


# ---------------------------------------------------------------------------------- what trains
def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def check_freeze(model: nn.Module, prefixes: list[str], where: str = "train.freeze") -> None:
    """Every prefix names at least one parameter, and something is left to train."""
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(_matches(name, prefix) for name in names):
            modules = [name for name, _ in model.named_children()]
            raise TransferError(
                f"{where}: {prefix!r} matches no parameter of the model; its top-level modules are {modules}"
            )
    if prefixes and all(any(_matches(name, p) for p in prefixes) for name in names):
        raise TransferError(f"{where}: {prefixes} freezes every parameter; nothing would train")


def freeze(model: nn.Module, prefixes: list[str], where: str = "train.freeze") -> list[str]:
    """Set requires_grad False on the parameters under `prefixes`; returns their names. BatchNorm
    running statistics of frozen layers still follow the data (they are buffers, not parameters)."""
    check_freeze(model, prefixes, where)
    frozen = []
    for name, param in model.named_parameters():
        if any(_matches(name, prefix) for prefix in prefixes):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The optimizer's groups: the trainable parameters at `lr`, those of `head` at `head_lr` when set.
    Frozen parameters are left out (AdamW's weight decay would otherwise still move them)."""
    trainable = [param for param in model.parameters() if param.requires_grad]
    if cfg.head_lr is None:
        return [{"params": trainable}]
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        modules = [name for name, _ in model.named_children()]
        raise TransferError(
            f"train.head_lr: the model has no `head` module; its top-level modules are {modules}"
        )
    in_head = {id(param) for param in head.parameters()}
    body = [param for param in trainable if id(param) not in in_head]
    heads = [param for param in trainable if id(param) in in_head]
    groups: list[dict[str, Any]] = [{"params": body}] if body else []
    if heads:
        groups.append({"params": heads, "lr": cfg.head_lr})
    return groups
