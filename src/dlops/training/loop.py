"""The family-agnostic training loop: AdamW, warmup + cosine LR, early stopping, atomic per-epoch resume.

Data that fits lives on the training device and batches are taken by index (training/device.py), so
there is no per-sample DataLoader overhead; under torchrun each rank trains on its shard of every
global batch (training/distributed.py). All randomness (batch order, dropout, augmentation) comes from
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

from dlops.params import TrainConfig
from dlops.training import distributed, transfer
from dlops.training.checkpoint import FORMAT, CheckpointError, load_safe, save_atomic
from dlops.training.device import (
    Split,
    configure_backends,
    mark_batch_dynamic,
    prepare_model,
    select_device,
)

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
    privacy: dict[str, Any] | None = None  # DP-SGD: ε, δ, noise and steps (privacy/dp.py); None without

    def history_dict(self) -> dict[str, Any]:
        return {"epochs": self.history, "best_epoch": self.best_epoch, "stopped_early": self.stopped_early}


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
    configure_backends(device, cfg)
    world = distributed.current()
    channels_last = prepare_model(model, device, cfg)
    train_split = Split(*data["train"], device, channels_last=channels_last)
    val_split = Split(*data["val"], device, channels_last=channels_last)
    if cfg.batch_size > len(train_split):
        log.warning(
            "train.batch_size %d is larger than the %d training rows: each epoch is one step of the "
            "whole set (a smaller batch_size gives more updates per epoch)",
            cfg.batch_size,
            len(train_split),
        )
    weights = (
        None
        if sample_weights is None
        else torch.as_tensor(sample_weights, dtype=torch.float32, device=train_split.index_device())
    )
    if cfg.freeze:
        transfer.freeze(model, cfg.freeze)
    optimizers = _optimizers(model, cfg)
    base_lrs = [[group["lr"] for group in opt.param_groups] for opt in optimizers]
    early_stopping = cfg.early_stopping and getattr(model, "early_stopping", True)
    batch_gen = torch.Generator().manual_seed(cfg.seed)  # the same global batch order on every rank
    aug_gen = torch.Generator().manual_seed(world.seed(cfg.seed) + 1)
    use_amp = cfg.amp and device.type == "cuda" and cfg.privacy is None  # DP-SGD trains in fp32
    forward: nn.Module = model
    private = None
    if cfg.privacy is not None:
        forward, private = _make_private(model, optimizers, cfg, len(train_split), weights, augment, world)

    state = _fresh_state(model)
    resumed_from = None
    if resume_path is not None and resume_path.exists():
        resumed = _try_resume(resume_path, fingerprint)
        if resumed is not None:
            model.load_state_dict(resumed["model"])
            for opt, opt_state in zip(optimizers, resumed["optimizers"], strict=True):
                opt.load_state_dict(opt_state)
            batch_gen.set_state(resumed["batch_rng"])
            aug_gen.set_state(resumed["aug_rng"])
            torch.set_rng_state(resumed["torch_rng"])
            state = {key: resumed[key] for key in state}
            if private is not None:
                private.restore(resumed["privacy"])
            resumed_from = int(resumed["epoch"])
            log.info("resuming from %s at epoch %d", resume_path, resumed_from)
    if world.parallel:
        if getattr(model, "training_step", None) is None:
            forward = distributed.wrap(model, device)  # broadcasts rank 0's weights
        else:
            distributed.broadcast_state(model)
            distributed.average_gradients_on_step(optimizers, world)
        if not world.is_main:  # dropout masks and noise differ between ranks, as their data does
            torch.manual_seed(world.seed(cfg.seed) + state["epoch"])

    val_split = by_length(val_split)
    progress = _Progress(cfg.epochs, start=state["epoch"], quiet=not world.is_main)
    epochs_this_call = 0
    while state["epoch"] < cfg.epochs and (state["bad_epochs"] < cfg.patience or not early_stopping):
        if max_epochs is not None and epochs_this_call >= max_epochs:
            break
        epoch = state["epoch"]
        started = time.perf_counter()
        factor = lr_factor(epoch, cfg)
        for opt, lrs in zip(optimizers, base_lrs, strict=True):
            for group, base in zip(opt.param_groups, lrs, strict=True):
                group["lr"] = base * factor
        running = _train_one_epoch(
            model,
            forward,
            optimizers,
            train_split,
            weights,
            cfg,
            batch_gen,
            aug_gen,
            augment,
            use_amp,
            world,
            private,
        )
        val_loss, val_acc = _evaluate_val(model, val_split, use_amp, cfg.compile, world)
        # train/* are the epoch's running means over its batches (train mode: dropout and augmentation
        # on), which the step computed anyway; a second pass over training rows would cost 5-70% more.
        row: dict[str, float] = {"epoch": epoch + 1, "train/loss": round(running.pop("loss", math.nan), 6)}
        train_acc = running.pop("accuracy", None)
        row.update({f"train/batch_{k}": round(v, 6) for k, v in running.items()})
        row["val/loss"] = round(val_loss, 6)
        if train_acc is not None and val_acc is not None:
            row.update({"train/accuracy": round(train_acc, 6), "val/accuracy": round(val_acc, 6)})
        row["lr"] = round(cfg.lr * factor, 8)
        if private is not None:  # the budget spent so far, at train.privacy.delta
            row["privacy/epsilon"] = round(private.epsilon(), 6)
        state["history"].append(row)
        # lower is better: the loss, or minus the accuracy (`train.monitor`; models without one use the loss)
        monitored = -val_acc if cfg.monitor == "val_accuracy" and val_acc is not None else val_loss
        improved = monitored < state["best_val_loss"] - cfg.min_delta
        if not early_stopping:  # a GAN (its losses do not measure quality), or asked: keep the last epoch
            state.update(best_val_loss=monitored, best_epoch=epoch + 1, bad_epochs=0)
            state["best_model"] = None
        elif improved:
            state.update(best_val_loss=monitored, best_epoch=epoch + 1, bad_epochs=0)
            state["best_model"] = _cpu_state(model)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        epochs_this_call += 1
        if logger is not None and world.is_main:
            logger.log_epoch({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        progress.update(row, time.perf_counter() - started)
        if resume_path is not None and world.is_main:
            extra = {} if private is None else {"privacy": private.state()}
            _save_resume(resume_path, fingerprint, model, optimizers, batch_gen, aug_gen, {**state, **extra})
    progress.close()
    if private is not None:
        private.close()

    finished = state["epoch"] >= cfg.epochs or (early_stopping and state["bad_epochs"] >= cfg.patience)
    best = state["best_model"] if state["best_model"] is not None else _cpu_state(model)
    model.load_state_dict(best)
    model.eval()
    return TrainResult(
        model=model,
        history=state["history"],
        best_epoch=int(state["best_epoch"]),
        stopped_early=finished and state["epoch"] < cfg.epochs,
        resumed_from_epoch=resumed_from,
        privacy=None if private is None else private.record(),
    )


def _make_private(
    model: nn.Module,
    optimizers: list[torch.optim.Optimizer],
    cfg: TrainConfig,
    rows: int,
    weights: torch.Tensor | None,
    augment: BatchAugment | None,
    world: distributed.World,
) -> tuple[nn.Module, Any]:
    """`train.privacy`: the module to call (Opacus' per-example gradients) and the DP-SGD state;
    optimizers[0] becomes the DP optimizer (clip each example's gradient, add noise)."""
    from dlops.privacy import dp

    assert cfg.privacy is not None
    name = str(getattr(model, "family", type(model).__name__))
    dp.refuse_unsupported(
        family=name,
        stepped=getattr(model, "training_step", None) is not None,
        sample_weights=weights is not None,
        augment=augment is not None,
        compiled=cfg.compile,
        parallel=world.parallel,
    )
    dp.check_compatible(model, name)
    forward, optimizers[0], private = dp.make_private(
        model,
        optimizers[0],
        cfg.privacy,
        rows=rows,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        seed=cfg.seed,
    )
    return forward, private


def _optimizers(model: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW over every parameter, unless the family owns its optimisation (a GAN's two optimizers);
    with `freeze` or `head_lr`, over the trainable parameters, the head in a group of its own (the
    warmup/cosine factor scales every group's rate)."""
    configure = getattr(model, "configure_optimizers", None)
    if configure is not None:
        if cfg.head_lr is not None:
            raise transfer.TransferError("train.head_lr: this family sets up its own optimizers; set null")
        return list(configure(cfg))
    if cfg.freeze or cfg.head_lr is not None:
        groups = transfer.param_groups(model, cfg)
        return [torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)]
    return [torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)]


def _train_one_epoch(
    model: nn.Module,
    forward: nn.Module,
    optimizers: list[torch.optim.Optimizer],
    data: Split,
    weights: torch.Tensor | None,
    cfg: TrainConfig,
    batch_gen: torch.Generator,
    aug_gen: torch.Generator,
    augment: BatchAugment | None,
    use_amp: bool,
    world: distributed.World,
    private: Any = None,
) -> dict[str, float]:
    """One pass over shuffled global batches (each rank takes its shard; `forward` is the DDP wrapper
    when there are several); returns the sample-weighted mean of each batch loss (and a classifier's
    accuracy) over all ranks. Sums stay on the device, so there is no host sync per step."""
    model.train()
    step = getattr(model, "training_step", None)
    classifier = getattr(model, "is_classifier", True)
    totals: dict[str, torch.Tensor] = {}
    seen = 0
    for batch in batch_order(data, cfg, batch_gen):
        if len(batch) < 2 * world.size and len(data) > 1:  # BatchNorm cannot train on one sample
            continue
        idx = distributed.shard(batch, world)
        xb, yb = data.take(idx)
        if augment is not None:
            xb, yb = augment(xb, yb, aug_gen)
        if cfg.compile:
            mark_batch_dynamic(xb, yb)
        if step is not None:  # the family steps its own optimizers (adversarial training)
            with torch.autocast(device_type=xb.device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses: dict[str, Any] = step(xb, yb, optimizers)
        else:
            wb = None if weights is None else weights[idx]
            with torch.autocast(device_type=xb.device.type, dtype=torch.bfloat16, enabled=use_amp):
                output, loss = forward(xb, yb, wb)
            optimizers[0].zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0 and private is None:  # DP-SGD clips each example's gradient instead
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizers[0].step()
            if private is not None:  # count the noisy step
                private.step()
            losses = {"loss": loss.detach()}
            if classifier:  # against the hard label (mixup's soft targets: the larger share)
                hard = yb if yb.ndim == 1 else yb.argmax(-1)
                losses["accuracy"] = (output.detach().argmax(-1) == hard).double().mean()
        for name, value in losses.items():
            weighted = torch.as_tensor(value, dtype=torch.float64, device=data.device) * len(idx)
            totals[name] = totals[name] + weighted if name in totals else weighted
        seen += len(idx)
    names = sorted(totals)
    count = torch.tensor(float(seen), dtype=torch.float64)
    summed = torch.stack([totals[name].cpu() for name in names] + [count])
    values = (distributed.sum_across(summed) if world.parallel else summed).tolist()
    return {name: total / max(values[-1], 1) for name, total in zip(names, values[:-1], strict=True)}


BUCKET_POOL = 50  # length bucketing: batches drawn together, sorted by length, then shuffled


def token_lengths(x: torch.Tensor | np.ndarray) -> torch.Tensor | None:
    """Non-padding tokens per row of right-padded token ids (0 = padding); None for other inputs. An
    array is counted as it is (it may be read-only, e.g. memory-mapped), never wrapped by torch."""
    if isinstance(x, torch.Tensor):
        return None if x.ndim != 2 or x.dtype.is_floating_point else (x != 0).sum(1)
    if x.ndim != 2 or np.issubdtype(x.dtype, np.floating):
        return None
    return torch.from_numpy(np.asarray((x != 0).sum(1)))


def batch_order(data: Split, cfg: TrainConfig, gen: torch.Generator) -> list[torch.Tensor]:
    """This epoch's global batches of row indices (on the data's device), drawn with `gen`: a random
    permutation cut into batches; for token ids with `length_bucketing`, each pool of BUCKET_POOL
    batches is sorted by length before it is cut and the batches are shuffled, so a batch's rows have
    similar lengths and the models' trim of all-padding columns removes most of the padding."""
    order = torch.randperm(len(data), generator=gen)
    lengths = token_lengths(data.x) if cfg.length_bucketing else None
    if lengths is None:
        batches = list(order.split(cfg.batch_size))
    else:
        lengths = lengths.cpu()
        batches = []
        for pool in order.split(cfg.batch_size * BUCKET_POOL):
            pool = pool[torch.argsort(lengths[pool], stable=True)]
            batches.extend(pool.split(cfg.batch_size))
        batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
    device = data.index_device()
    return [batch.to(device) for batch in batches]


def by_length(split: Split) -> Split:
    """The split's rows in order of token length (token ids), so evaluation chunks trim their padding;
    other splits as they are. Losses and accuracies are sums over rows: the order does not change them."""
    lengths = token_lengths(split.x)
    if lengths is None:
        return split
    return split.subset(torch.argsort(lengths, stable=True))


def _evaluate_val(
    model: nn.Module, val: Split, use_amp: bool, compiled: bool, world: distributed.World
) -> tuple[float, float | None]:
    """(val loss, val accuracy): rank 0 evaluates and every rank gets its numbers, so early stopping
    decides the same everywhere."""
    nan = float("nan")
    scores = [nan, nan]
    if world.is_main:
        val_loss, val_acc = evaluate_loss(model, val, use_amp, compiled)
        scores = [val_loss, nan if val_acc is None else val_acc]
    if world.parallel:
        scores = distributed.from_main(torch.tensor(scores, dtype=torch.float64)).tolist()
    return scores[0], None if math.isnan(scores[1]) else scores[1]


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, data: Split, use_amp: bool = False, compiled: bool = False
) -> tuple[float, float | None]:
    """(mean loss, accuracy) of `model` on `data` in eval mode, in chunks. Classifiers: cross-entropy
    and accuracy; other families: their own loss (reconstruction, ELBO, adversarial) and None."""
    model.eval()
    classifier = getattr(model, "is_classifier", True)
    total_loss = torch.zeros((), dtype=torch.float64, device=data.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.device)
    # rows of features in large chunks; images (conv activations) and token ids (attention) in small ones
    chunk = 8192 if data.x.ndim == 2 and data.x.dtype.is_floating_point else 512
    for xb, yb in data.chunks(chunk):
        if compiled:
            mark_batch_dynamic(xb, yb)
        with torch.autocast(device_type=xb.device.type, dtype=torch.bfloat16, enabled=use_amp):
            output, loss = model(xb, yb)
        if classifier:
            logits = output.float()
            total_loss += nn.functional.cross_entropy(logits, yb, reduction="sum").double()
            correct += (logits.argmax(-1) == yb).sum()
        else:
            total_loss += loss.double() * len(xb)
    n = max(len(data), 1)
    return float(total_loss) / n, (int(correct) / n if classifier else None)


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Class probabilities (N, K) as float64, computed on the model's device in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    lengths = token_lengths(np.asarray(x)) if len(x) else None
    batch_size = batch_size or (8192 if np.ndim(x) == 2 and lengths is None else 512)
    # token ids in order of length, so each chunk trims its padding; the rows go back in place below
    order = None if lengths is None else torch.argsort(lengths, stable=True).numpy()
    out = []
    for start in range(0, len(x), batch_size):
        rows = slice(start, start + batch_size)
        chunk = x[rows] if order is None else np.asarray(x)[order[rows]]
        dtype = np.int64 if np.issubdtype(np.asarray(chunk).dtype, np.integer) else np.float32  # ids stay ids
        batch = np.array(chunk, dtype=dtype)  # own, writable copy
        xb = torch.from_numpy(batch).to(device)
        logits, _ = model(xb)
        out.append(torch.softmax(logits.float(), dim=-1).double().cpu().numpy())
    if not out:
        return np.zeros((0, 0))
    proba = np.concatenate(out)
    if order is not None:
        proba[order] = proba.copy()
    return proba


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
    optimizers: list[torch.optim.Optimizer],
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
            "optimizers": [copy.deepcopy(opt.state_dict()) for opt in optimizers],
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
        log.warning("resume checkpoint not loaded, training from scratch: %s", exc)
        return None
    if ckpt.get("kind") != "resume" or ckpt.get("fingerprint") != fingerprint:
        log.info("resume checkpoint %s is for other params or data; starting fresh", path)
        return None
    return ckpt


class _Progress:
    """A rich progress bar on a terminal, one plain log line per epoch otherwise."""

    def __init__(self, total: int, start: int, quiet: bool = False) -> None:
        self.bar: Any = None
        self.quiet = quiet  # ranks other than 0 under torchrun
        if sys.stderr.isatty() and not quiet:
            from rich.progress import Progress

            self.bar = Progress(transient=False)
            self.bar.start()
            self.task = self.bar.add_task("training", total=total, completed=start)

    def update(self, row: dict[str, float], seconds: float) -> None:
        accuracy = f" val/accuracy {row['val/accuracy']:.4f}" if "val/accuracy" in row else ""
        text = (
            f"epoch {int(row['epoch'])}: train/loss {row['train/loss']:.4f} "
            f"val/loss {row['val/loss']:.4f}{accuracy} ({seconds:.2f}s)"
        )
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=text)
        elif not self.quiet:
            log.info(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
