"""Token-level augmentation of the `text` task's training batches: token dropout to <unk> and adjacent
swaps, drawn from the caller's generator."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dlops.kinds.text.tokenizer import PAD_ID, UNK_ID
from dlops.params import TextAugmentConfig

TextAugment = Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor]]


def make_text_augment(cfg: TextAugmentConfig) -> TextAugment | None:
    """Token dropout to <unk> and adjacent swaps on a batch of ids (B, L); None when both are off.

    Padding (id 0) is never touched. Each adjacent pair of non-pad tokens is swapped with probability
    `local_swap`, skipping a pair that overlaps the swapped pair before it, so swaps never chain.
    """
    if cfg.token_dropout == 0 and cfg.local_swap == 0:
        return None

    def augment(ids: Tensor, labels: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        out = ids
        if cfg.token_dropout > 0:
            drop = _uniform(ids.shape, generator, ids.device) < cfg.token_dropout
            out = out.masked_fill(drop & (ids != PAD_ID), UNK_ID)
        if cfg.local_swap > 0 and ids.shape[1] > 1:
            out = _swap_adjacent(out, cfg.local_swap, generator)
        return out, labels

    return augment


def _uniform(shape: torch.Size, generator: torch.Generator, device: torch.device) -> Tensor:
    """U(0, 1) drawn on the generator's device (so the draws depend only on it), then moved."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _swap_adjacent(ids: Tensor, share: float, generator: torch.Generator) -> Tensor:
    left, right = ids[:, :-1], ids[:, 1:]
    drawn = (left != PAD_ID) & (right != PAD_ID)
    drawn &= _uniform(left.shape, generator, ids.device) < share
    previous = torch.nn.functional.pad(drawn[:, :-1], (1, 0), value=False)
    swap = drawn & ~previous
    out = ids.clone()
    out[:, :-1] = torch.where(swap, right, out[:, :-1])
    out[:, 1:] = torch.where(swap, left, out[:, 1:])
    return out
