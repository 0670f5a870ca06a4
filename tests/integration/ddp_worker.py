"""Run by tests/integration/test_ddp.py under `torchrun --nproc_per_node 2` (gloo on the CPU).

Every rank trains (1) the equivalence MLP, which the test compares with one process on the same global
batch, and (2) each family for one epoch on a tiny input, reporting a checksum of its parameters so
the test can check the replicas stayed identical. Rank 0 writes what it saw to argv[1] as JSON.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from dlops.models.registry import build_model
from dlops.params import TrainConfig
from dlops.training import distributed
from dlops.training.device import Split
from dlops.training.loop import seed_everything, train

# No dropout, no BatchNorm: with the same global batch the only difference left is summation order.
EQUIVALENCE_MODEL = {"hidden_sizes": [32, 16], "dropout": 0.0, "batch_norm": False}
EQUIVALENCE_TRAIN = {"epochs": 4, "batch_size": 64, "lr": 3e-3, "patience": 100, "seed": 7, "device": "cpu"}

FAMILIES: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {
    "mlp": ((12,), {"hidden_sizes": [16], "dropout": 0.1}),
    "cnn": ((1, 16, 16), {"channels": [8, 16], "dropout": 0.1}),
    "autoencoder": ((1, 16, 16), {"channels": [8, 16], "latent_dim": 4}),
    "vae": ((1, 16, 16), {"channels": [8, 16], "latent_dim": 4}),
    "gan": ((1, 16, 16), {"channels": [8, 16], "latent_dim": 8}),
    "rnn": ((10,), {"vocab_size": 20, "embedding_dim": 8, "hidden_size": 8, "dropout": 0.1}),
    "transformer": ((10,), {"vocab_size": 20, "d_model": 8, "num_heads": 2, "dim_feedforward": 16}),
}


def equivalence_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """512 training rows (8 full global batches of 64) and 128 validation rows, 10 features, 3 classes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(640, 10)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return {"train": (x[:512], y[:512]), "val": (x[512:], y[512:])}


def train_equivalence_model() -> dict[str, Any]:
    """Train the equivalence MLP; the parameters, the history and the training rows this process drew,
    in order, as plain lists."""
    cfg = TrainConfig(**EQUIVALENCE_TRAIN)
    seed_everything(cfg.seed)
    model = build_model("mlp", input_shape=(10,), num_classes=3, config=EQUIVALENCE_MODEL)
    drawn: list[int] = []
    take = Split.take

    def recording_take(self: Split, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(self) == 512 and len(idx) < 512:  # training batches
            drawn.extend(idx.tolist())
        return take(self, idx)

    Split.take = recording_take  # type: ignore[method-assign]
    try:
        result = train(model, equivalence_data(), cfg)
    finally:
        Split.take = take  # type: ignore[method-assign]
    state = {name: tensor.flatten().tolist() for name, tensor in result.model.state_dict().items()}
    return {"state": state, "history": result.history, "rows_drawn": drawn}


def family_data(shape: tuple[int, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    n = 96
    if shape == (10,):  # token ids (0 is padding)
        x: np.ndarray = rng.integers(1, 20, size=(n, 10)).astype(np.int64)
    else:
        x = rng.random(size=(n, *shape)).astype(np.float32)
    y = (np.arange(n) % 3).astype(np.int64)
    return {"train": (x[:64], y[:64]), "val": (x[64:], y[64:])}


def train_family(family: str) -> str:
    """One epoch of `family`; the sha256 of its parameters (identical on every rank if DDP worked)."""
    shape, config = FAMILIES[family]
    cfg = TrainConfig(epochs=1, batch_size=16, seed=3, device="cpu", patience=5)
    seed_everything(cfg.seed)
    model = build_model(family, input_shape=shape, num_classes=3, config=config)
    result = train(model, family_data(shape), cfg)
    digest = hashlib.sha256()
    for name, param in sorted(result.model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().numpy().tobytes())
    return digest.hexdigest()


def main(out: Path) -> None:
    with distributed.session(torch.device("cpu")) as world:
        assert world.size == 2, f"expected 2 ranks, got {world.size}"
        report: dict[str, Any] = {"world_size": world.size, "equivalence": train_equivalence_model()}
        rows: list[Any] = [None] * world.size
        dist.all_gather_object(rows, report["equivalence"].pop("rows_drawn"))
        report["rows_drawn_by_rank"] = rows
        checksums = {family: train_family(family) for family in FAMILIES}
        gathered: list[Any] = [None] * world.size
        dist.all_gather_object(gathered, checksums)
        report["checksums_by_rank"] = gathered
        if world.is_main:
            out.write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
