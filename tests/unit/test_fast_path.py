"""The training fast path: data placement, CUDA settings, channels_last and torch.compile."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from dlops.models.registry import build_model
from dlops.params import TrainConfig
from dlops.training import device as fast
from dlops.training.loop import seed_everything, train


def table(n: int = 100, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    cut = int(n * 0.7)
    return {"train": (x[:cut], y[:cut]), "val": (x[cut:], y[cut:])}


def mlp() -> torch.nn.Module:
    return build_model("mlp", input_shape=(6,), num_classes=2, config={"hidden_sizes": [16], "dropout": 0.0})


def test_split_takes_rows_by_index_and_chunks_in_order() -> None:
    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    y = np.arange(10)
    split = fast.Split(x, y, torch.device("cpu"))
    assert split.on_device and split.x.dtype == torch.float32  # float64 tables train as float32
    xb, yb = split.take(torch.tensor([7, 2]))
    assert xb.tolist() == [[14.0, 15.0], [4.0, 5.0]] and yb.tolist() == [7, 2]
    assert [len(yb) for _, yb in split.chunks(4)] == [4, 4, 2]
    assert torch.cat([yb for _, yb in split.chunks(4)]).tolist() == list(range(10))
    part = split.subset(torch.tensor([1, 3]))
    assert len(part) == 2 and part.take(torch.tensor([1]))[1].tolist() == [3]


def test_the_cpu_path_changes_no_global_setting() -> None:
    before = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)
    fast.configure_backends(torch.device("cpu"), TrainConfig(fast_math=True))
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32) == before
    cnn = build_model("cnn", input_shape=(1, 8, 8), num_classes=2, config={"channels": [4]})
    assert fast.is_convolutional(cnn) and not fast.is_convolutional(mlp())
    assert fast.prepare_model(cnn, torch.device("cpu"), TrainConfig()) is False  # channels_last: CUDA only


@pytest.mark.slow
def test_compile_reuses_one_graph_per_mode_for_short_batches_and_agrees_with_eager() -> None:
    from torch._dynamo.utils import counters

    graphs: list[int] = []

    class GraphCount:
        def log_epoch(self, metrics: dict[str, float], step: int) -> None:
            graphs.append(counters["stats"]["unique_graphs"])

    results: dict[bool, Any] = {}
    for compiled in (False, True):
        torch._dynamo.reset()
        counters.clear()
        # 70 training rows in batches of 32: 32, 32 and a short 6; evaluation chunks of 70 and 30
        cfg = TrainConfig(epochs=3, batch_size=32, seed=0, device="cpu", patience=10, compile=compiled)
        seed_everything(0)
        results[compiled] = train(mlp(), table(), cfg, logger=GraphCount() if compiled else None)
    assert graphs == [2, 2, 2]  # one training and one evaluation graph, compiled once, never again
    for eager, compiled_row in zip(results[False].history, results[True].history, strict=True):
        assert compiled_row["val/loss"] == pytest.approx(eager["val/loss"], rel=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_fast_path_on_device_and_from_pinned_host_memory_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = TrainConfig(epochs=3, batch_size=16, seed=0, device="cuda", patience=10, fast_math=False)
    rows = {}
    for share in (fast.DEVICE_MEMORY_SHARE, 0.0):  # 0.0: nothing fits, batches come from pinned buffers
        monkeypatch.setattr(fast, "DEVICE_MEMORY_SHARE", share)
        seed_everything(0)
        rows[share] = train(mlp(), table(), cfg).history
    assert rows[0.0] == rows[fast.DEVICE_MEMORY_SHARE]
    cnn = build_model("cnn", input_shape=(1, 8, 8), num_classes=2, config={"channels": [4]})
    assert fast.prepare_model(cnn, torch.device("cuda"), cfg) is True
    assert next(p for p in cnn.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)
