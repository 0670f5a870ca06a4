"""Self-describing checkpoints: family, config and state dict in one file, loaded with weights_only=True.

Every write goes to a temporary file in the same folder and is moved into place with os.replace, so a
kill mid-write leaves the previous checkpoint intact; a file that cannot be read is reported, never
half-loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlops.errors import DlopsError
from dlops.files import atomic_write

FORMAT = "dlops.checkpoint/1"


class CheckpointError(DlopsError, RuntimeError):
    """A checkpoint is missing, corrupt, unsafe or not in our format."""


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """torch.save to `path` atomically (dlops.files.atomic_write)."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def load_safe(path: Path) -> dict[str, Any]:
    """Load a checkpoint dict with weights_only=True; raise CheckpointError naming the file otherwise."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, truncated file, or a pickled object weights_only refuses
        raise CheckpointError(f"{path}: cannot be loaded safely ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint")
    return obj


def model_checkpoint(
    *,
    model: nn.Module,
    pair: str,
    task: str,
    family: str,
    model_config: dict[str, Any],
    input_shape: tuple[int, ...] | list[int],
    classes: list[str],
    train_config: dict[str, Any],
    best_epoch: int,
    init_from: dict[str, Any] | None = None,
    privacy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The final, self-describing model file (docs/pipeline.md, "File formats"). `init_from` (a warm
    start's parent: its registered URI, run, sha256 and what was loaded) and `privacy` (DP-SGD's spent
    ε at δ, noise, clipping and steps) are written only when given, so other files stay byte-identical."""
    ckpt = {
        "format": FORMAT,
        "pair": pair,
        "task": task,
        "family": family,
        "model_config": model_config,
        "input_shape": list(input_shape),  # one sample: (F,) for tables, (C, H, W) for images
        "num_classes": len(classes),
        "classes": list(classes),
        "train_config": train_config,
        "best_epoch": best_epoch,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    if init_from is not None:
        ckpt["init_from"] = init_from
    if privacy is not None:
        ckpt["privacy"] = privacy
    return ckpt


@dataclass
class WarmStart:
    """What `load_matching` did: tensors copied from the parent, tensors of the model left as initialised
    (name -> why: absent from the parent or another shape), and parent tensors with no place here."""

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)


def load_matching(model: nn.Module, state_dict: dict[str, Any]) -> WarmStart:
    """Copy into `model` every tensor of `state_dict` (parameters and buffers) whose name and shape
    match; the others keep their fresh initialisation (an embedding after the vocabulary grew, a head
    for another number of classes). Draws no random numbers."""
    own = model.state_dict()
    report = WarmStart(unused=[key for key in state_dict if key not in own])
    for key, tensor in own.items():
        theirs = state_dict.get(key)
        if not isinstance(theirs, torch.Tensor):
            report.skipped[key] = "absent from the parent"
        elif theirs.shape != tensor.shape:
            report.skipped[key] = f"shape {tuple(tensor.shape)}, parent {tuple(theirs.shape)}"
        else:
            own[key] = theirs
            report.loaded.append(key)
    model.load_state_dict(own)  # copies in place: dtype and device stay the model's
    return report


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from the file alone; returns (model in eval mode, metadata without weights)."""
    from dlops.models.registry import build_model

    ckpt = load_safe(path)
    model = build_model(
        ckpt["family"],
        input_shape=tuple(ckpt["input_shape"]),
        num_classes=ckpt["num_classes"],
        config=ckpt["model_config"],
    )
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model, meta
