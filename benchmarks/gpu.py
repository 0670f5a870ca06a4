"""GPU throughput of the trainer per family: fp32 vs bf16 autocast (`train.amp`), eager vs
`train.compile` (compile time apart from steady state), and the CNN's time to a target validation
accuracy (0.99) on a 60,000-image IDX set held on the device, and with two GPUs the CNN under 2-process
DDP on NCCL. Without CUDA it says so, records the skip and exits 0.

Everything goes through `dlops.training.loop.train` with params.yaml's model and train sections;
training-step time is measured around the loop's per-epoch training pass with CUDA synchronised.
Defaults fit in about 8 minutes on one H100 (compiled runs stop being started after --budget-s).
Run: .venv/bin/python benchmarks/gpu.py [--quick] [--families cnn,mlp] [--budget-s 400]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # a checkout without an editable install
import workloads as wl  # noqa: E402
from results import append_results, parser, print_table  # noqa: E402

SIZES = {"mlp": 50_000, "cnn": 20_000, "rnn": 20_000, "transformer": 20_000, "autoencoder": 40_000}
SIZES |= {"vae": 40_000, "gan": 20_000}  # training rows before anomaly filtering; --quick: a tenth
COMPILE_ORDER = ("cnn", "mlp", "transformer", "autoencoder", "vae", "gan", "rnn")  # most telling first
VARIANTS = {"fp32": {"amp": False, "compile": False}, "bf16": {"amp": True, "compile": False}}
STARTED = time.perf_counter()


class TargetReached(Exception):
    """Raised by the epoch logger to stop training once the target accuracy is reached."""


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@contextlib.contextmanager
def timed_train_passes() -> Iterator[list[float]]:
    """Seconds of each call of the loop's per-epoch training pass (loop._train_one_epoch), synchronised."""
    from dlops.training import loop

    seconds: list[float] = []
    original = loop._train_one_epoch

    def timed(*args: Any, **kwargs: Any) -> Any:
        sync()
        started = time.perf_counter()
        out = original(*args, **kwargs)
        sync()
        seconds.append(time.perf_counter() - started)
        return out

    loop._train_one_epoch = timed
    try:
        yield seconds
    finally:
        loop._train_one_epoch = original


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def run(family: str, n: int, epochs: int, device: str, variant: str, **settings: Any) -> dict[str, Any]:
    """One loop.train of `family` on `n` synthetic rows; steady = median of the epochs after the first."""
    from dlops.models.registry import build_model
    from dlops.params import TrainConfig
    from dlops.training import loop

    data, model_cfg, train = wl.family_workload(family, n)
    cfg = TrainConfig(**{**train, "epochs": epochs, "patience": 10**6, "device": device})
    cfg = cfg.model_copy(update=settings)  # compile/amp are the trainer's own fields
    x = data["train"][0]
    torch.manual_seed(cfg.seed)
    model = build_model(
        family, input_shape=tuple(x.shape[1:]), num_classes=wl.FAMILIES[family].classes, config=model_cfg
    )
    torch._dynamo.reset()
    started = time.perf_counter()
    with timed_train_passes() as passes:
        loop.train(model, data, cfg)
    wall = time.perf_counter() - started
    steady = statistics.median(passes[1:] or passes)
    row = {"family": family, "variant": variant, "n_train": len(x), "batch": cfg.batch_size}
    row |= {
        "samples/s": round(len(x) / steady),
        "steady pass s": round(steady, 3),
        "first pass s": round(passes[0], 2),
    }
    row |= {"train() wall s": round(wall, 1), "graphs": graphs_compiled() if settings.get("compile") else "-"}
    return row


def idx_images(n: int, noise: float, tmp: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """`n` synthetic 28x28 images written as an IDX pair (as a user's MNIST-style files) and read back
    through the images kind's own IDX reader; pixels as float32 in [0, 1], as preprocess scales them."""
    from dlops.kinds.images.sources import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, _read_idx

    x, y = wl.images(n, noise=noise, seed=3)
    pixels = np.rint(x[:, 0] * 255).astype(np.uint8)  # (N, 28, 28)
    for name, array, magic in (
        ("images.idx", pixels, IDX_IMAGES_MAGIC),
        ("labels.idx", y.astype(np.uint8), IDX_LABELS_MAGIC),
    ):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
        (tmp / name).write_bytes(header + array.tobytes())
    images = _read_idx(tmp / "images.idx", "images.idx", IDX_IMAGES_MAGIC).astype(np.float32) / 255
    labels = _read_idx(tmp / "labels.idx", "labels.idx", IDX_LABELS_MAGIC).astype(np.int64)
    return images[:, None], labels, f"{(tmp / 'images.idx').stat().st_size / 2**20:.0f} MiB IDX"


def time_to_accuracy(n: int, epochs: int, device: str, target: float, noise: float) -> dict[str, Any]:
    """The CNN on an IDX set of n training + n/6 validation 28x28 images (blobs in noise), held on the
    device by the loop, until val accuracy >= target."""
    import tempfile

    from dlops.models.registry import build_model
    from dlops.params import TrainConfig
    from dlops.training import loop
    from dlops.training.device import Split

    with tempfile.TemporaryDirectory(prefix="dlops-gpu-idx-") as tmp:
        x, y, size = idx_images(n + n // 6, noise, Path(tmp))
    data = {"train": (x[:n], y[:n]), "val": (x[n:], y[n:])}
    entry = wl.pair_entry("images-cnn")
    cfg = TrainConfig(**{**entry["train"], "epochs": epochs, "patience": 10**6, "device": device})
    torch.manual_seed(cfg.seed)
    model = build_model("cnn", input_shape=(1, 28, 28), num_classes=10, config=entry["model"])
    seen: list[tuple[float, float]] = []
    on_device = Split(x[:8], y[:8], loop.select_device(device)).on_device  # what the loop decides
    started = time.perf_counter()

    class Watch:
        def log_epoch(self, metrics: dict[str, float], step: int) -> None:
            seen.append((time.perf_counter() - started, metrics["val/accuracy"]))
            if metrics["val/accuracy"] >= target:
                raise TargetReached

    with contextlib.suppress(TargetReached):
        loop.train(model, data, cfg, logger=Watch())
    reached = seen[-1][1] >= target
    return {
        "family": "cnn",
        "variant": f"time to val accuracy {target} ({size}, data on device: {on_device})",
        "n_train": n,
        "batch": cfg.batch_size,
        "train() wall s": round(seen[-1][0], 1) if reached else None,
        "epochs": len(seen),
        "val accuracy": round(max(a for _, a in seen), 4),
        "reached": "yes" if reached else f"no, in {epochs} epochs",
    }


def ddp(n: int, epochs: int) -> dict[str, Any]:
    """The CNN under `torchrun --nproc_per_node 2` (NCCL, one GPU per process): this script's
    --ddp-worker mode; rank 0 reports the training pass time for the global batch."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dlops-gpu-ddp-") as tmp:
        out = Path(tmp) / "ddp.json"
        torchrun = Path(sys.executable).with_name("torchrun")
        cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", __file__, "--ddp-worker", str(out)]
        done = subprocess.run(
            cmd + ["--ddp-n", str(n), "--ddp-epochs", str(epochs)], capture_output=True, text=True
        )
        if done.returncode != 0:
            return {
                "family": "cnn",
                "variant": "DDP 2 GPUs (NCCL)",
                "reached": f"failed: {done.stderr[-300:]}",
            }
        return dict(json.loads(out.read_text()))


def ddp_worker(out: Path, n: int, epochs: int) -> None:
    """One rank of ddp(): the same run as the single-GPU fp32 CNN row, the global batch split in two."""
    from dlops.training import distributed

    with distributed.session(torch.device("cuda", int(__import__("os").environ["LOCAL_RANK"]))) as world:
        row = run("cnn", n, epochs, "cuda", f"DDP {world.size} GPUs (NCCL), fp32")
        if world.is_main:
            import json

            out.write_text(json.dumps(row))


def skipped(args: argparse.Namespace) -> None:
    print("no CUDA device: skipped")
    cuda = torch.version.cuda or "none (CPU build)"
    notes = (
        f"torch.cuda.is_available() is False (torch {torch.__version__}, CUDA {cuda}); nothing was measured."
    )
    append_results("GPU benchmarks: skipped (no CUDA device)", [], notes, args.results)


def main(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available() and not args.cpu_smoke:
        skipped(args)
        return
    from dlops.params import TrainConfig

    device = "cpu" if args.cpu_smoke else "cuda"
    scale = 100 if args.cpu_smoke else (10 if args.quick else 1)
    epochs = 2 if args.quick or args.cpu_smoke else 3
    families = args.families.split(",")
    rows = []
    for family in families:
        for variant, settings in VARIANTS.items():
            rows.append(run(family, SIZES[family] // scale, epochs, device, variant, **settings))
            print(rows[-1], file=sys.stderr, flush=True)
    target_n = 60_000 // scale
    rows.append(
        time_to_accuracy(target_n, 3 if args.quick or args.cpu_smoke else 15, device, args.target, args.noise)
    )
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    if gpus >= 2 and "cnn" in families:
        rows.append(ddp(SIZES["cnn"] // scale, epochs))
    late = []
    for family in [f for f in COMPILE_ORDER if f in families][: 1 if args.cpu_smoke else None]:
        if time.perf_counter() - STARTED > args.budget_s:
            late.append(family)
            continue
        rows.append(
            run(family, SIZES[family] // scale, epochs, device, "bf16 + compile", amp=True, compile=True)
        )
        print(rows[-1], file=sys.stderr, flush=True)
    for row in rows:
        base = next((r for r in rows if r["family"] == row["family"] and r["variant"] == "fp32"), None)
        if base and "samples/s" in row:
            row["vs fp32"] = round(row["samples/s"] / base["samples/s"], 2)
    where = torch.cuda.get_device_name() if device == "cuda" else "CPU smoke"
    title = f"GPU: trainer throughput, bf16, compile ({where})"
    title += " [quick]" if args.quick else ""
    print_table(title, rows)
    compile_field = "compile" in TrainConfig.model_fields
    notes = (
        f"{epochs} epochs per run through loop.train (patience off), params.yaml model/train sections "
        "(fast_math default: TF32 matmuls, cuDNN autotuning). `steady pass s` is the median training pass "
        "(loop._train_one_epoch, CUDA synchronised) after the first; samples/s = n_train / that. `first pass "
        "s` includes CUDA/cuDNN warm-up and, for compiled runs, compilation (first - steady ~ compile "
        "time); `graphs` = torch._dynamo unique graphs (0 means cfg.compile was not honoured; TrainConfig "
        f"{'has' if compile_field else 'has NO'} a compile field). Time to accuracy: {target_n} training "
        f"and {target_n // 6} validation images (images_70k.py's blobs in noise of {args.noise:g} grey "
        "levels), written as an IDX pair and read back by the images kind's reader: wall time of train() "
        "to the first epoch whose val accuracy reaches the target, evaluations included. "
        + (
            f"DDP: {gpus} GPUs seen, 2 ranks under torchrun, NCCL; samples/s over the global batch."
            if gpus >= 2
            else f"DDP: not run ({gpus} CUDA device(s); it needs 2)."
        )
        + (f" Not started (time budget {args.budget_s} s): compile for {', '.join(late)}." if late else "")
    )
    append_results(title, rows, notes, args.results)


if __name__ == "__main__":
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument(
        "--families", default=",".join(SIZES), help="comma-separated subset of " + ",".join(SIZES)
    )
    ap.add_argument(
        "--budget-s", type=float, default=400.0, help="start no compiled run after this many seconds"
    )
    ap.add_argument("--target", type=float, default=0.99, help="CNN validation accuracy to reach")
    ap.add_argument("--noise", type=float, default=30.0, help="grey-level noise of the IDX images")
    ap.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)  # one rank of the DDP row
    ap.add_argument("--ddp-n", type=int, default=SIZES["cnn"], help=argparse.SUPPRESS)
    ap.add_argument("--ddp-epochs", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--cpu-smoke", action="store_true", help="exercise the code path on the CPU, tiny sizes")
    parsed = ap.parse_args()
    if parsed.ddp_worker is not None:
        ddp_worker(parsed.ddp_worker, parsed.ddp_n, parsed.ddp_epochs)
    else:
        main(parsed)
