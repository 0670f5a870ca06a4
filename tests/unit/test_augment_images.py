"""kornia augmentation: shapes/dtype/labels kept, values in [0, 1], reproducible from the generator alone."""

from __future__ import annotations

import pytest
import torch

from dlops.kinds.images.augment import make_image_augment
from dlops.params import ImageAugmentConfig

ALL_ON = ImageAugmentConfig(degrees=15.0, translate=0.1, scale=0.1, erasing_p=0.5, noise_std=0.05)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(8, 1, 16, 16, generator=g)  # (N, C, H, W)
    y = torch.randint(0, 10, (8,), generator=g)
    return x, y


def test_disabled_config_gives_none() -> None:
    assert make_image_augment(ImageAugmentConfig()) is None


@pytest.mark.parametrize(
    "cfg",
    [
        ALL_ON,
        ImageAugmentConfig(degrees=30.0),
        ImageAugmentConfig(translate=0.2),
        ImageAugmentConfig(scale=0.2),
        ImageAugmentConfig(erasing_p=1.0),
        ImageAugmentConfig(noise_std=0.1),
    ],
)
def test_keeps_shape_dtype_labels_and_range(cfg: ImageAugmentConfig) -> None:
    augment = make_image_augment(cfg)
    assert augment is not None
    x, y = _batch()
    out, labels = augment(x, y, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.equal(labels, y)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, x)


def test_keeps_half_precision_dtype() -> None:
    augment = make_image_augment(ALL_ON)
    assert augment is not None
    x, y = _batch()
    out, _ = augment(x.half(), y, torch.Generator().manual_seed(1))
    assert out.dtype == torch.float16


def test_same_generator_seed_same_output_and_different_seed_different_output() -> None:
    augment = make_image_augment(ALL_ON)
    assert augment is not None
    x, y = _batch()
    a, _ = augment(x, y, torch.Generator().manual_seed(3))
    torch.rand(5)  # the global RNG moving in between must not matter
    b, _ = augment(x, y, torch.Generator().manual_seed(3))
    c, _ = augment(x, y, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_successive_calls_on_one_generator_differ() -> None:
    augment = make_image_augment(ALL_ON)
    assert augment is not None
    x, y = _batch()
    g = torch.Generator().manual_seed(3)
    first, _ = augment(x, y, g)
    second, _ = augment(x, y, g)
    assert not torch.equal(first, second)


def test_global_rng_state_is_untouched() -> None:
    augment = make_image_augment(ALL_ON)
    assert augment is not None
    x, y = _batch()
    before = torch.random.get_rng_state()
    augment(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_reproducibly_without_touching_its_rng() -> None:
    augment = make_image_augment(ALL_ON)
    assert augment is not None
    x, y = (t.cuda() for t in _batch())
    before = torch.cuda.get_rng_state()
    a, labels = augment(x, y, torch.Generator().manual_seed(2))
    b, _ = augment(x, y, torch.Generator().manual_seed(2))
    assert a.device == x.device and torch.equal(labels, y)
    assert torch.equal(a, b)
    assert torch.equal(torch.cuda.get_rng_state(), before)
