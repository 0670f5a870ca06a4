"""Where training runs and how fast: the device, CUDA math settings, data placement, channels_last, compile.

On the CPU nothing here changes the arithmetic, so CPU runs stay deterministic. On CUDA the data lives
on the device when it fits (batches are taken by index, no DataLoader), otherwise in host memory,
gathered into pinned buffers and copied asynchronously.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dlops.params import TrainConfig

log = logging.getLogger(__name__)
DEVICE_MEMORY_SHARE = 0.5  # keep the data on the GPU while it takes at most half of its free memory


def select_device(preference: str) -> torch.device:
    """The device for `train.device`; under torchrun each process takes the GPU of its LOCAL_RANK."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    index = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def configure_backends(device: torch.device, cfg: TrainConfig) -> None:
    """CUDA: TF32 matmuls and convolutions plus cuDNN autotuning when `train.fast_math`; otherwise
    deterministic kernels. The CPU keeps the deterministic settings of seed_everything."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = cfg.fast_math
    torch.backends.cudnn.allow_tf32 = cfg.fast_math
    torch.backends.cudnn.benchmark = cfg.fast_math
    torch.use_deterministic_algorithms(not cfg.fast_math, warn_only=True)


def is_convolutional(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())


def prepare_model(model: nn.Module, device: torch.device, cfg: TrainConfig) -> bool:
    """Move `model` to `device` (channels_last for conv nets on CUDA) and compile it in place when
    `train.compile`; returns whether image batches should be channels_last too."""
    channels_last = device.type == "cuda" and is_convolutional(model)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in the stubs
    if cfg.compile:
        # in place: the module object and its state_dict keys stay the same (checkpoints, DDP, EMA)
        model.compile()
    return channels_last


class Split:
    """One split's tensors on the training device, or pinned host buffers when they do not fit there."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: torch.device, *, channels_last: bool = False):
        self.device, self.channels_last = device, channels_last
        x_t, y_t = _tensor(x), _tensor(y)
        self.on_device = device.type == "cpu" or _fits(device, x_t.nbytes + y_t.nbytes)
        if self.on_device:
            self.x, self.y = x_t.to(device), y_t.to(device)
        else:
            log.info("%.1f GiB of data stays in host memory; batches are copied from pinned buffers",
                     (x_t.nbytes + y_t.nbytes) / 2**30)  # fmt: skip
            self.x, self.y = x_t, y_t
        self._slots: list[_Pinned | None] = [None, None]  # host path: two buffers, used in turn
        self._turn = 0

    def __len__(self) -> int:
        return len(self.x)

    def index_device(self) -> torch.device:
        """Where batch indices must live: with the data."""
        return self.x.device

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows `idx` (on index_device()) as a batch on the training device."""
        if self.on_device:
            return self._format(self.x[idx]), self.y[idx]
        return self._copy_in(idx)

    def chunks(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive batches of at most `size` rows, in order (evaluation)."""
        for start in range(0, len(self), size):
            idx = torch.arange(start, min(start + size, len(self)), device=self.index_device())
            yield self.take(idx)

    def subset(self, idx: torch.Tensor) -> Split:
        """A split holding only the rows `idx` (placed like this one)."""
        part = copy.copy(self)
        part.x, part.y = self.x[idx], self.y[idx]
        part._slots, part._turn = [None, None], 0
        return part

    def _format(self, xb: torch.Tensor) -> torch.Tensor:
        if self.channels_last and xb.ndim == 4:
            return xb.contiguous(memory_format=torch.channels_last)
        return xb

    def _copy_in(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather the rows into this turn's pinned buffer (once its previous copy has finished, or a
        larger new one) and copy them to the device asynchronously."""
        n = len(idx)
        slot = self._slots[self._turn]
        if slot is None or len(slot.x) < n:
            slot = _Pinned(
                torch.empty((n, *self.x.shape[1:]), dtype=self.x.dtype).pin_memory(),
                torch.empty((n, *self.y.shape[1:]), dtype=self.y.dtype).pin_memory(),
            )
        elif slot.copied is not None:
            slot.copied.synchronize()
        torch.index_select(self.x, 0, idx, out=slot.x[:n])
        torch.index_select(self.y, 0, idx, out=slot.y[:n])
        xb = slot.x[:n].to(self.device, non_blocking=True)
        yb = slot.y[:n].to(self.device, non_blocking=True)
        slot.copied = torch.cuda.Event()
        slot.copied.record()
        self._slots[self._turn] = slot
        self._turn = 1 - self._turn
        return self._format(xb), yb


@dataclass
class _Pinned:
    """A pinned host buffer for one batch and the event of its last copy to the device."""

    x: torch.Tensor
    y: torch.Tensor
    copied: torch.cuda.Event | None = None


def mark_batch_dynamic(*tensors: torch.Tensor) -> None:
    """Tell torch.compile the batch dimension varies, so a short last batch reuses the compiled graph."""
    for tensor in tensors:
        torch._dynamo.maybe_mark_dynamic(tensor, 0)


def _fits(device: torch.device, nbytes: int) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_MEMORY_SHARE * free


def _tensor(array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(array))  # a writable copy: pandas 3 hands out read-only views
    return tensor.float() if tensor.dtype == torch.float64 else tensor
