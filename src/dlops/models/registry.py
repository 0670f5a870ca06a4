"""A tiny registry: `@register_family("mlp")` on a builder, `build_model("mlp", ...)` to make one.

Family modules are imported lazily (torch is heavy), so listing names, kinds and tasks costs nothing.

Every model's `forward(x, targets=None, weights=None)` returns `(output, loss)`; loss is None without
targets. What `output` is depends on the family's kind:
- classifier (mlp, cnn): logits (B, K);
- anomaly (autoencoder, vae): reconstructions shaped like x; `anomaly_score(x)` gives (B,) scores;
- generator (gan, vae): `sample(labels, generator)` gives images in [0, 1] for class labels.
Adversarial families (gan) own their optimisation: `configure_optimizers(train_cfg)` and
`training_step(x, y, optimizers) -> {name: loss}`; the loop calls those instead of backward().
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Family:
    module: str
    kinds: frozenset[str]  # classifier | anomaly | generator
    tasks: frozenset[str]  # task kinds it reads: tabular | images


# name -> where it lives and what it is; adding a family = one file + one line here + params entry.
FAMILIES: dict[str, Family] = {
    "mlp": Family("dlops.models.mlp", frozenset({"classifier"}), frozenset({"tabular", "images", "text"})),
    "cnn": Family("dlops.models.cnn", frozenset({"classifier"}), frozenset({"images"})),
    "autoencoder": Family("dlops.models.autoencoder", frozenset({"anomaly"}), frozenset({"images"})),
    "vae": Family("dlops.models.vae", frozenset({"anomaly", "generator"}), frozenset({"images"})),
    "gan": Family("dlops.models.gan", frozenset({"generator"}), frozenset({"images"})),
    "rnn": Family("dlops.models.rnn", frozenset({"classifier"}), frozenset({"text"})),
    "transformer": Family("dlops.models.transformer", frozenset({"classifier"}), frozenset({"text"})),
}

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_family(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        _BUILDERS[name] = builder
        return builder

    return decorate


def make_config(config_cls: Any, config: dict[str, Any]) -> Any:
    """A family's config dataclass from params' `model:` mapping; an unknown key names the valid ones."""
    import dataclasses

    try:
        return config_cls(**config)
    except TypeError as exc:
        keys = ", ".join(f.name for f in dataclasses.fields(config_cls))
        raise ValueError(f"model: {exc}; valid keys: {keys}") from None


def classification_loss(logits: Any, targets: Any, weights: Any = None) -> Any:
    """Cross-entropy of logits (B, K) on hard (B,) or soft (B, K) targets (mixup), optionally weighted
    per sample: the loss every classifier family returns."""
    import torch.nn.functional as F

    if targets.dtype.is_floating_point:
        per_sample = -(targets * F.log_softmax(logits, dim=-1)).sum(-1)
    else:
        per_sample = F.cross_entropy(logits, targets, reduction="none")
    if weights is not None:
        return (per_sample * weights).sum() / weights.sum()
    return per_sample.mean()


def known_families() -> list[str]:
    return sorted(FAMILIES)


def family_kinds(family: str) -> frozenset[str]:
    return _family(family).kinds


def family_tasks(family: str) -> frozenset[str]:
    return _family(family).tasks


def _family(family: str) -> Family:
    if family not in FAMILIES:
        close = difflib.get_close_matches(family, known_families(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model family {family!r}; known: {known_families()}.{hint}")
    return FAMILIES[family]


def build_model(
    family: str, *, input_shape: tuple[int, ...], num_classes: int, config: dict[str, Any]
) -> Any:
    """Build an `nn.Module` of `family` for inputs of `input_shape` (one sample, e.g. (F,) or (C, H, W))."""
    importlib.import_module(_family(family).module)
    return _BUILDERS[family](input_shape=tuple(input_shape), num_classes=num_classes, **config)
