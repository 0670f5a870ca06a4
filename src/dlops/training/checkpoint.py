"""Self-describing checkpoints: family, config and state dict in one file, loaded with weights_only=True.

Every write goes to a temporary file in the same folder and is moved into place with os.replace, so a
kill mid-write leaves the previous checkpoint intact; a file that cannot be read is reported, never
half-loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "dlops.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, unsafe or not in our format."""


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """torch.save to `path` atomically (temp file + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
) -> dict[str, Any]:
    """The final, self-describing model file (CONTRACTS.md)."""
    return {
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
