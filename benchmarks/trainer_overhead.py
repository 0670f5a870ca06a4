"""dlops' training loop against a minimal hand-written PyTorch loop, per family, on the same model init,
data, seed, batch order, AdamW, grad clipping, LR schedule and per-epoch validation loss pass.

Reports the median epoch time (epochs after the first) of both, their ratio (target <= 1.02; the loop
records train/loss and train/accuracy from the running batch figures, as the hand loop keeps its running
loss), and whether the final losses agree.
Run: .venv/bin/python benchmarks/trainer_overhead.py [--quick] [--families cnn,gan] [--repeats 3]
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import workloads as wl
from results import append_results, parser, print_table
from torch import nn

from dlops.models.registry import build_model
from dlops.params import TrainConfig
from dlops.training import loop

REL_TOL = 1e-5  # history values are rounded to 6 decimals; the arithmetic itself is the same


SIZES = {"mlp": 14_000, "cnn": 5_000, "rnn": 4_000, "transformer": 4_000, "autoencoder": 8_000}
SIZES |= {"vae": 8_000, "gan": 3_000}  # training rows before anomaly filtering; --quick uses a tenth


@dataclass
class Run:
    """Per-epoch seconds, the last epoch's losses and the learning rate of each epoch of one run."""

    epoch_s: list[float] = field(default_factory=list)
    batch_loss: float = math.nan
    val_loss: float = math.nan
    lrs: list[float] = field(default_factory=list)

    @property
    def steady(self) -> float:
        """Median epoch seconds after the first (the first pays one-time kernel set-up)."""
        return statistics.median(self.epoch_s[1:] or self.epoch_s)


def run_ours(model: nn.Module, data: dict[str, wl.Split], cfg: TrainConfig) -> Run:
    """loop.train, timed per epoch by its epoch logger (called once each epoch has been evaluated)."""
    stamps = [time.perf_counter()]

    class Clock:
        def log_epoch(self, metrics: dict[str, float], step: int) -> None:
            stamps.append(time.perf_counter())

    result = loop.train(model, data, cfg, logger=Clock())
    last = result.history[-1]
    return Run(
        epoch_s=[b - a for a, b in zip(stamps, stamps[1:], strict=False)],
        batch_loss=last["train/loss"],
        val_loss=last["val/loss"],
        lrs=[row["lr"] for row in result.history],
    )


def hand_lr(epoch: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine to 5% of the base rate (or constant): the schedule params describe."""
    if epoch < cfg.warmup_epochs:
        return float((epoch + 1) / (cfg.warmup_epochs + 1))
    if cfg.scheduler == "none":
        return 1.0
    progress = (epoch - cfg.warmup_epochs) / max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.05 + 0.475 * (1.0 + math.cos(math.pi * progress))


def as_tensor(array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(array))
    return tensor.float() if tensor.dtype == torch.float64 else tensor


@torch.no_grad()
def val_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean of the model's own loss over the validation set, in eval mode, in memory-bounded chunks."""
    model.eval()
    total, chunk = 0.0, 8192 if x.ndim == 2 else 512
    for start in range(0, len(x), chunk):
        _, loss = model(x[start : start + chunk], y[start : start + chunk])
        total += float(loss) * len(x[start : start + chunk])
    return total / len(x)


def hand_batches(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> list[torch.Tensor]:
    """A random permutation cut into batches; for token ids (0 = padding), pools of 50 batches sorted
    by length and the batches shuffled, so the models' trim of all-padding columns pays off (as loop.py)."""
    order = torch.randperm(len(x), generator=gen)
    if x.dtype.is_floating_point or not cfg.length_bucketing:
        return list(order.split(cfg.batch_size))
    lengths = (x != 0).sum(1)
    batches = [
        b
        for pool in order.split(cfg.batch_size * 50)
        for b in pool[lengths[pool].argsort(stable=True)].split(cfg.batch_size)
    ]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def run_hand(model: nn.Module, data: dict[str, wl.Split], cfg: TrainConfig) -> Run:
    """The loop a careful person writes by hand: same seed, batch order, optimiser, clipping, schedule."""
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    (x, y), (xv, yv) = ((as_tensor(a), as_tensor(b)) for a, b in (data["train"], data["val"]))
    if not xv.dtype.is_floating_point:  # token ids: evaluate in order of length (less padding per chunk)
        by_length = (xv != 0).sum(1).argsort(stable=True)
        xv, yv = xv[by_length], yv[by_length]
    configure = getattr(model, "configure_optimizers", None)
    opts = (
        configure(cfg)
        if configure
        else [torch.optim.AdamW(model.parameters(), cfg.lr, weight_decay=cfg.weight_decay)]
    )
    bases = [[g["lr"] for g in opt.param_groups] for opt in opts]
    gen, step = torch.Generator().manual_seed(cfg.seed), getattr(model, "training_step", None)
    run, stamp = Run(), time.perf_counter()
    for epoch in range(cfg.epochs):
        run.lrs.append(round(cfg.lr * hand_lr(epoch, cfg), 8))
        for opt, base in zip(opts, bases, strict=True):
            for group, lr in zip(opt.param_groups, base, strict=True):
                group["lr"] = lr * hand_lr(epoch, cfg)
        model.train()
        total, seen = torch.zeros((), dtype=torch.float64), 0
        for idx in hand_batches(x, cfg, gen):
            if len(idx) < 2:  # BatchNorm cannot train on one sample (the loop skips it too)
                continue
            if step is not None:  # the GAN steps its own two optimisers
                loss = torch.tensor(step(x[idx], y[idx], opts)["loss"], dtype=torch.float64)
            else:
                _, loss = model(x[idx], y[idx])
                opts[0].zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opts[0].step()
            total += loss.detach().double() * len(idx)
            seen += len(idx)
        run.batch_loss, run.val_loss = round(float(total) / seen, 6), round(val_loss(model, xv, yv), 6)
        now = time.perf_counter()
        run.epoch_s.append(now - stamp)
        stamp = now
    return run


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL_TOL * max(1.0, abs(a), abs(b))


def bench_family(family: str, quick: bool, epochs: int, repeats: int) -> dict[str, Any]:
    data, model_cfg, train = wl.family_workload(family, SIZES[family] // (10 if quick else 1))
    cfg = TrainConfig(**{**train, "epochs": epochs, "patience": 10**6, "device": "cpu"})
    x, y = data["train"]
    torch.manual_seed(cfg.seed)
    init = build_model(
        family, input_shape=tuple(x.shape[1:]), num_classes=wl.FAMILIES[family].classes, config=model_cfg
    )
    ours, hand = [], []
    for r in range(repeats):  # alternate the order so drift in machine load hits both alike
        for who in ("hand", "ours") if r % 2 == 0 else ("ours", "hand"):
            if who == "ours":
                ours.append(run_ours(copy.deepcopy(init), data, cfg))
            else:
                hand.append(run_hand(copy.deepcopy(init), data, cfg))
    # the machine's speed drifts by 10-25% over tens of seconds: each ratio compares two runs made back
    # to back, and the median of those ratios is the figure
    ratios = sorted(o.steady / h.steady for o, h in zip(ours, hand, strict=True))
    ours_s, hand_s = statistics.median(o.steady for o in ours), statistics.median(h.steady for h in hand)
    o, h = ours[0], hand[0]
    for name, runs in (("ours", ours), ("hand", hand)):
        print(f"{family} {name} s/epoch:", [[round(s, 3) for s in r.epoch_s] for r in runs], file=sys.stderr)
    return {
        "family": family,
        "n_train": len(x),
        "batch": cfg.batch_size,
        "epochs": epochs,
        "ours s/epoch": round(ours_s, 3),
        "hand s/epoch": round(hand_s, 3),
        "ratio": round(statistics.median(ratios), 3),
        "ratio range": f"{ratios[0]:.2f}..{ratios[-1]:.2f}",
        "ours batch loss": o.batch_loss,
        "hand batch loss": h.batch_loss,
        "ours val loss": o.val_loss,
        "hand val loss": h.val_loss,
        "agree": "yes" if close(o.batch_loss, h.batch_loss) and close(o.val_loss, h.val_loss) else "NO",
        "same lr": "yes" if o.lrs == h.lrs else "NO",
    }


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument(
        "--families", default=",".join(SIZES), help="comma-separated subset of " + ",".join(SIZES)
    )
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run (default 4; --quick 2)")
    ap.add_argument("--repeats", type=int, default=5, help="pairs of runs per family (median ratio)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    epochs = args.epochs or (2 if args.quick else 4)
    rows = []
    for family in args.families.split(","):
        started = time.perf_counter()
        rows.append(bench_family(family, args.quick, epochs, args.repeats))
        print(f"{family}: {time.perf_counter() - started:.1f} s in all", file=sys.stderr, flush=True)
    title = "Trainer overhead: loop.train vs a hand-written loop (CPU)" + (" [quick]" if args.quick else "")
    print_table(title, rows)
    notes = (
        f"torch.set_num_threads({args.threads}) for both loops; device cpu; early stopping off (patience "
        f"10^6), so both run {epochs} epochs; a run's s/epoch = median of its epochs after the first; "
        f"{args.repeats} pairs of runs, each pair back to back (alternating which goes first); `ratio` = "
        "median over the pairs of ours / hand, `ratio range` its extremes, s/epoch columns the medians. "
        "Same deep-copied initial weights, "
        "torch.manual_seed, torch.randperm batch order from a Generator seeded like loop.py, AdamW (the "
        "GAN's own Adam pair via configure_optimizers/training_step), grad clipping, warmup + cosine LR "
        "per epoch, and a validation loss pass each epoch in both (ours also scores val accuracy, and keeps "
        "a running train accuracy beside the running loss both keep). "
        f"Losses agree when |a - b| <= {REL_TOL:g} x max(1, |a|, |b|) (values rounded to 6 decimals); on "
        f"the CPU the arithmetic is the same, so they should be equal. Progress bar: "
        f"{'on (stderr is a terminal)' if sys.stderr.isatty() else 'off'}."
    )
    append_results(title, rows, notes, args.results)


if __name__ == "__main__":
    main()
