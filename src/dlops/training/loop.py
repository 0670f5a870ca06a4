"""The family-agnostic training loop: AdamW, warmup + cosine LR, early stopping, atomic per-epoch resume.

Data that fits in memory lives on the training device and batches are taken by index, so there is
no per-sample DataLoader overhead. All randomness (batch order, dropout, augmentation) comes from
seeded generators whose states are saved in the resume checkpoint, so a run that is killed and
resumed ends with the same weights as one that was not.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from dlops.config import TrainConfig
from dlops.training.checkpoint import FORMAT, CheckpointError, load_safe, save_atomic

log = logging.getLogger(__name__)

# A batch transform for training batches only (e.g. noise/mixup): (x, y, generator) -> (x, y).
BatchAugment = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class EpochLogger(Protocol):
    def log_epoch(self, metrics: dict[str, float], step: int) -> None: ...


@dataclass
class TrainResult:
    model: nn.Module  # holds the best-epoch weights
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    resumed_from_epoch: int | None = None

    def history_dict(self) -> dict[str, Any]:
        return {"epochs": self.history, "best_epoch": self.best_epoch, "stopped_early": self.stopped_early}


def select_device(preference: str) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to 5% (or constant); epoch counts from 0."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.scheduler == "none":
        return 1.0
    span = max(1, cfg.epochs - cfg.warmup_epochs)
    progress = (epoch - cfg.warmup_epochs) / span
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(
    model: nn.Module,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    cfg: TrainConfig,
    *,
    sample_weights: np.ndarray | None = None,
    augment: BatchAugment | None = None,
    logger: EpochLogger | None = None,
    resume_path: Path | None = None,
    fingerprint: str = "",
    max_epochs: int | None = None,
) -> TrainResult:
    """Train `model` on data["train"], early-stopping on data["val"] loss; returns the best weights.

    `resume_path` is written atomically after every epoch and picked up on the next call when its
    fingerprint (a hash of config + data) matches. `max_epochs` stops after that many epochs of this
    call (tests use it to simulate an interruption).
    """
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    model.to(device)
    x_train, y_train = (_to_device(a, device) for a in data["train"])
    x_val, y_val = (_to_device(a, device) for a in data["val"])
    weights = (
        None
        if sample_weights is None
        else torch.as_tensor(sample_weights, dtype=torch.float32, device=device)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch_gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    use_amp = cfg.amp and device.type == "cuda"

    state = _fresh_state(model)
    resumed_from = None
    if resume_path is not None and resume_path.exists():
        resumed = _try_resume(resume_path, fingerprint)
        if resumed is not None:
            model.load_state_dict(resumed["model"])
            optimizer.load_state_dict(resumed["optimizer"])
            batch_gen.set_state(resumed["batch_rng"])
            aug_gen.set_state(resumed["aug_rng"])
            torch.set_rng_state(resumed["torch_rng"])
            state = {key: resumed[key] for key in state}
            resumed_from = int(resumed["epoch"])
            log.info("resuming from %s at epoch %d", resume_path, resumed_from)

    progress = _Progress(cfg.epochs, start=state["epoch"])
    epochs_this_call = 0
    while state["epoch"] < cfg.epochs and state["bad_epochs"] < cfg.patience:
        if max_epochs is not None and epochs_this_call >= max_epochs:
            break
        epoch = state["epoch"]
        started = time.perf_counter()
        lr = cfg.lr * lr_factor(epoch, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        train_loss = _train_one_epoch(
            model, optimizer, x_train, y_train, weights, cfg, batch_gen, aug_gen, augment, use_amp
        )
        train_eval_loss, train_acc = evaluate_loss(model, x_train, y_train, use_amp)
        val_loss, val_acc = evaluate_loss(model, x_val, y_val, use_amp)
        row = {
            "epoch": epoch + 1,
            "train/loss": round(train_eval_loss, 6),
            "train/batch_loss": round(train_loss, 6),
            "val/loss": round(val_loss, 6),
            "train/accuracy": round(train_acc, 6),
            "val/accuracy": round(val_acc, 6),
            "lr": round(lr, 8),
        }
        state["history"].append(row)
        if val_loss < state["best_val_loss"] - cfg.min_delta:
            state.update(best_val_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0)
            state["best_model"] = _cpu_state(model)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        epochs_this_call += 1
        if logger is not None:
            logger.log_epoch({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        progress.update(row, time.perf_counter() - started)
        if resume_path is not None:
            _save_resume(resume_path, fingerprint, model, optimizer, batch_gen, aug_gen, state)
    progress.close()

    finished = state["epoch"] >= cfg.epochs or state["bad_epochs"] >= cfg.patience
    best = state["best_model"] if state["best_model"] is not None else _cpu_state(model)
    model.load_state_dict(best)
    model.eval()
    return TrainResult(
        model=model,
        history=state["history"],
        best_epoch=int(state["best_epoch"]),
        stopped_early=finished and state["epoch"] < cfg.epochs,
        resumed_from_epoch=resumed_from,
    )


def _train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor | None,
    cfg: TrainConfig,
    batch_gen: torch.Generator,
    aug_gen: torch.Generator,
    augment: BatchAugment | None,
    use_amp: bool,
) -> float:
    model.train()
    order = torch.randperm(len(x), generator=batch_gen).to(x.device)
    total, seen = 0.0, 0
    for start in range(0, len(x), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        if len(idx) < 2 and len(x) > 1:  # BatchNorm cannot train on one sample
            continue
        xb, yb = x[idx], y[idx]
        if augment is not None:
            xb, yb = augment(xb, yb, aug_gen)
        wb = None if weights is None else weights[idx]
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=use_amp):
            _, loss = model(xb, yb, wb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, use_amp: bool = False
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on (x, y), in eval mode, in chunks."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), 8192):
        xb, yb = x[start : start + 8192], y[start : start + 8192]
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits, _ = model(xb)
        logits = logits.float()
        total_loss += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(-1) == yb).sum())
    return total_loss / max(len(x), 1), correct / max(len(x), 1)


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Class probabilities (N, K) as float64, computed on the model's device in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(x), batch_size):
        batch = np.array(x[start : start + batch_size], dtype=np.float32)  # own, writable copy
        xb = torch.from_numpy(batch).to(device)
        logits, _ = model(xb)
        out.append(torch.softmax(logits.float(), dim=-1).double().cpu().numpy())
    if not out:
        return np.zeros((0, 0))
    return np.concatenate(out)


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(array))  # a writable copy: pandas 3 hands out read-only views
    if tensor.dtype == torch.float64:
        tensor = tensor.float()
    return tensor.to(device)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _fresh_state(model: nn.Module) -> dict[str, Any]:
    return {
        "epoch": 0,
        "history": [],
        "best_val_loss": math.inf,
        "best_epoch": 0,
        "bad_epochs": 0,
        "best_model": None,
    }


def _save_resume(
    path: Path,
    fingerprint: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_gen: torch.Generator,
    aug_gen: torch.Generator,
    state: dict[str, Any],
) -> None:
    save_atomic(
        {
            "format": FORMAT,
            "kind": "resume",
            "fingerprint": fingerprint,
            "model": _cpu_state(model),
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "batch_rng": batch_gen.get_state(),
            "aug_rng": aug_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            **state,
        },
        path,
    )


def _try_resume(path: Path, fingerprint: str) -> dict[str, Any] | None:
    try:
        ckpt = load_safe(path)
    except CheckpointError as exc:
        log.warning("ignoring resume checkpoint: %s", exc)
        return None
    if ckpt.get("kind") != "resume" or ckpt.get("fingerprint") != fingerprint:
        log.info("resume checkpoint %s is for other params or data; starting fresh", path)
        return None
    return ckpt


class _Progress:
    """A rich progress bar on a terminal, one plain log line per epoch otherwise."""

    def __init__(self, total: int, start: int) -> None:
        self.bar: Any = None
        if sys.stderr.isatty():
            from rich.progress import Progress

            self.bar = Progress(transient=False)
            self.bar.start()
            self.task = self.bar.add_task("training", total=total, completed=start)

    def update(self, row: dict[str, float], seconds: float) -> None:
        text = (
            f"epoch {int(row['epoch'])}: train/loss {row['train/loss']:.4f} val/loss {row['val/loss']:.4f} "
            f"val/accuracy {row['val/accuracy']:.4f} ({seconds:.2f}s)"
        )
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=text)
        else:
            log.info(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
