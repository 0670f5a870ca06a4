"""Transfer learning: how a parent's weights land in the model and what trains (where they come from:
dlops.pairs.parent).

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
from typing import Any

import torch
from torch import nn

from dlops.errors import BadInput
from dlops.models.registry import encoder_families
from dlops.params import TrainConfig
from dlops.training.checkpoint import WarmStart, load_matching

log = logging.getLogger(__name__)


class TransferError(BadInput, ValueError):
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
    if parent.family in encoder_families(family):
        renamed, mapped, unmapped = encoder_into_cnn(model, parent.checkpoint)
        done = load_matching(model, renamed)
        return Transfer(done.loaded, done.skipped, unmapped, mapped)
    raise TransferError(
        f"{where}: {parent.uri} is a {parent.family} model and this one a {family}; a warm start needs the "
        f"same family, or an {' or '.join(encoder_families('cnn'))} encoder for a cnn"
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
