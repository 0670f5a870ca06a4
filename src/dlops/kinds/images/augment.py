"""On-device image augmentation for training batches (kornia): random affine, random erasing, pixel noise.

kornia draws its random numbers from torch's global RNG. To make a batch's augmentation a function of
the caller's `torch.Generator` alone, each call draws one seed from that generator and runs the
transforms under a forked, freshly seeded global RNG (CPU and the batch's device), which is restored
afterwards: the global RNG stream seen by the rest of the program is untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from dlops.params import ImageAugmentConfig

ImageAugment = Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor]]


def make_image_augment(cfg: ImageAugmentConfig) -> ImageAugment | None:
    """`(x (B, C, H, W) in [0, 1], y (B,), generator) -> (x', y)`, or None when no transform is enabled.

    Transforms, each only when its setting is > 0: RandomAffine (rotation in ±degrees, shift up to
    `translate` of width/height, zoom in [1 - scale, 1 + scale], zero padding), RandomErasing (per image
    with probability `erasing_p`, erased to 0), additive Gaussian noise (std `noise_std`). The output is
    clamped to [0, 1] and has x's shape, dtype and device; labels are returned unchanged.
    """
    if not cfg.enabled:
        return None
    transforms = _kornia_transforms(cfg)

    def augment(x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        with torch.no_grad(), _seeded_rng(seed, x.device):
            out = x.float()  # kornia's grid sampling wants float32, also under AMP
            if transforms is not None:
                out = transforms(out)
            if cfg.noise_std > 0:
                out = out + cfg.noise_std * torch.randn_like(out)
            out = out.clamp(0.0, 1.0).to(x.dtype)  # (B, C, H, W)
        return out, y

    return augment


def _kornia_transforms(cfg: ImageAugmentConfig) -> nn.Module | None:
    import kornia.augmentation as K

    steps: list[nn.Module] = []
    if cfg.degrees > 0 or cfg.translate > 0 or cfg.scale > 0:
        steps.append(
            K.RandomAffine(
                degrees=cfg.degrees,
                translate=(cfg.translate, cfg.translate) if cfg.translate > 0 else None,
                scale=(1.0 - cfg.scale, 1.0 + cfg.scale) if cfg.scale > 0 else None,
                padding_mode="zeros",
                p=1.0,
            )
        )
    if cfg.erasing_p > 0:
        steps.append(K.RandomErasing(p=cfg.erasing_p, value=0.0))
    return nn.Sequential(*steps) if steps else None


@contextmanager
def _seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Global RNG of the CPU and of `device` seeded with `seed` inside, restored on exit.

    Seeds only those two generators (not `torch.manual_seed`, which would also seed, lazily, every CUDA
    device, outside the fork).
    """
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            yield
        return
    module = torch.get_device_module(device.type)
    index = device.index if device.index is not None else module.current_device()
    with torch.random.fork_rng(devices=[index], device_type=device.type):
        torch.random.default_generator.manual_seed(seed)
        if hasattr(module, "default_generators"):  # cuda (and look-alikes): one generator per device
            module.default_generators[index].manual_seed(seed)
        else:  # single-device backends (mps)
            module.manual_seed(seed)
        yield
