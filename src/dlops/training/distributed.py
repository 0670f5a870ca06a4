"""Data-parallel training under `torchrun`: the process group from its environment, shards, and rank 0.

`torchrun --nproc_per_node N -m dlops train <pair>` (or `--nnodes`/`--rdzv-endpoint` across machines)
starts N processes; each joins the group (gloo on the CPU, NCCL on CUDA), trains on its shard of every
global batch and averages gradients with the others. Only rank 0 logs, writes checkpoints and talks
to MLflow. Without torchrun (WORLD_SIZE unset or 1) everything here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

RANK_SEED_STRIDE = 7919  # a prime: each rank's random streams start far from the others'


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def seed(self, base: int) -> int:
        """`base` on rank 0 (a single process draws what it always drew); offset on the other ranks."""
        return base + RANK_SEED_STRIDE * self.rank


def current() -> World:
    """This process's place in the group; a world of one when no group was started."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


@contextmanager
def session(device: torch.device) -> Iterator[World]:
    """Join the process group torchrun described in the environment for the duration of a stage."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or dist.is_initialized():
        yield current()
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def shard(idx: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's part of one global batch: every world.size-th row, starting at its rank."""
    return idx[world.rank :: world.size] if world.parallel else idx


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` (rank 0's weights are broadcast to all)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def average_gradients_on_step(optimizers: list[torch.optim.Optimizer], world: World) -> None:
    """For families that step their own optimizers outside one forward (a GAN's alternating updates),
    which DDP cannot see: average each optimizer's gradients across ranks just before it steps."""

    def hook(optimizer: torch.optim.Optimizer, *_: object) -> None:
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    dist.all_reduce(param.grad)
                    param.grad.div_(world.size)

    for optimizer in optimizers:
        optimizer.register_step_pre_hook(hook)


def broadcast_state(model: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers."""
    for tensor in model.state_dict().values():
        dist.broadcast(tensor, src=0)


def sum_across(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `values` over all ranks, on `values`' device."""
    on_wire = _for_backend(values)
    dist.all_reduce(on_wire)
    return on_wire.to(values.device)


def from_main(values: torch.Tensor) -> torch.Tensor:
    """Rank 0's copy of `values` on every rank (decisions such as early stopping must agree)."""
    on_wire = _for_backend(values)
    dist.broadcast(on_wire, src=0)
    return on_wire.to(values.device)


def _for_backend(values: torch.Tensor) -> torch.Tensor:
    """NCCL reduces CUDA tensors, gloo host tensors."""
    if dist.get_backend() == "nccl":
        return values.to(torch.device("cuda", torch.cuda.current_device()))
    return values.cpu()
