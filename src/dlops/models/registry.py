"""A tiny registry: `@register_family("mlp")` on a builder, `build_model("mlp", ...)` to make one.

Family modules are imported lazily (torch is heavy), so listing names, objectives, task kinds and the keys of
each family's `model:` mapping (checked when params.yaml loads) costs nothing.

Every model's `forward(x, targets=None, weights=None)` returns `(output, loss)`; loss is None without
targets. What `output` is depends on the family's objective:
- classifier (mlp, cnn): logits (B, K);
- anomaly (autoencoder, vae): reconstructions shaped like x; `anomaly_score(x)` gives (B,) scores;
- generator (gan, vae): `sample(labels, generator)` gives images in [0, 1] for class labels;
- forecaster (mlp, rnn, transformer on timeseries windows (B, lookback, F), built when the config's
  `horizon` is set): the next `horizon` scaled values (B, H); targets may hold NaN (masked steps).
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
    objectives: frozenset[str]  # classifier | anomaly | generator | forecaster (dlops.objectives)
    kinds: frozenset[str]  # the task kinds it reads: tabular | images | text | timeseries (dlops.kinds)
    # The keys params' `model:` may set, with their types: the fields of the family's config dataclass,
    # written out here so params.yaml is checked at load without importing the family (and torch).
    # tests/unit/test_models.py holds them equal to the dataclass.
    model_keys: dict[str, object]
    filled: frozenset[str] = frozenset()  # fields the pipeline fills from the task's data, never params
    # families whose first stages this family's encoder can initialise (training/transfer.py maps them)
    encoder_for: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Objective:
    """What a family's objective means for the checks made when params.yaml loads (dlops.objectives
    evaluates and serves it)."""

    primary_metrics: frozenset[str]  # what gates.primary_metric may name
    decides_classes: bool  # fairness gates on sensitive columns, mitigation, a `head`, val/accuracy
    judged: bool  # evaluated by the judge CNN of evaluate.judge
    validation_score: bool  # a validation loss a search can rank trials by
    kinds: frozenset[str]  # the task kinds a family is trained for this objective on


_CLASSIFIED = frozenset({"tabular", "images", "text"})
OBJECTIVES: dict[str, Objective] = {
    "classifier": Objective(
        frozenset({"accuracy", "balanced_accuracy", "f1", "roc_auc"}), True, False, True, _CLASSIFIED
    ),
    "anomaly": Objective(
        frozenset({"anomaly_roc_auc", "anomaly_average_precision"}), False, False, True, frozenset({"images"})
    ),
    "generator": Objective(frozenset({"sample_accuracy"}), False, True, False, frozenset({"images"})),
    # forecast_skill = 1 - MASE: higher is better, 0 is the seasonal-naive forecast's skill
    "forecaster": Objective(frozenset({"forecast_skill"}), False, False, True, frozenset({"timeseries"})),
}


# The builder's own arguments: the pipeline passes them, so no `model:` mapping may hold them.
BUILDER_ARGS = frozenset({"input_shape", "num_classes"})
_CONV: dict[str, object] = {"channels": list[int], "latent_dim": int}
_ANOMALY: dict[str, object] = {**_CONV, "normal_classes": list[int] | None}  # the classes it trains on
_TOKENS = frozenset({"vocab_size", "subwords"})  # from the fitted tokenizer (Kind.model_config)
_HORIZON = frozenset({"horizon"})  # forecasters: from the task's windows (Kind.model_config)
_CLASSIFIER, _IMAGES, _TEXT = frozenset({"classifier"}), frozenset({"images"}), frozenset({"text"})
_SEQUENCES = frozenset({"classifier", "forecaster"})  # text classifiers, series forecasters
_TEXT_OR_SERIES = frozenset({"text", "timeseries"})

# name -> where it lives and what it is; adding a family = one file + one entry here + params entry.
FAMILIES: dict[str, Family] = {
    "mlp": Family(
        "dlops.models.mlp", _SEQUENCES, frozenset({"tabular", "images", "text", "timeseries"}),
        {"hidden_sizes": list[int], "dropout": float, "batch_norm": bool}, _TOKENS | _HORIZON,
    ),
    "cnn": Family("dlops.models.cnn", _CLASSIFIER, _IMAGES, {"channels": list[int], "dropout": float}),
    "autoencoder": Family(
        "dlops.models.autoencoder", frozenset({"anomaly"}), _IMAGES, _ANOMALY, encoder_for=frozenset({"cnn"})
    ),
    "vae": Family(
        "dlops.models.vae", frozenset({"anomaly", "generator"}), _IMAGES, {**_ANOMALY, "beta": float},
        encoder_for=frozenset({"cnn"}),
    ),
    "gan": Family(
        "dlops.models.gan", frozenset({"generator"}), _IMAGES,
        {**_CONV, "label_smoothing": float, "diversity_weight": float, "ema_decay": float},
    ),
    "rnn": Family(
        "dlops.models.rnn", _SEQUENCES, _TEXT_OR_SERIES,
        {"embedding_dim": int, "hidden_size": int, "num_layers": int, "cell": str, "bidirectional": bool,
         "dropout": float, "pooling": str},
        _TOKENS | _HORIZON,
    ),
    "transformer": Family(
        "dlops.models.transformer", _SEQUENCES, _TEXT_OR_SERIES,
        {"d_model": int, "num_heads": int, "num_layers": int, "dim_feedforward": int, "dropout": float,
         "max_length": int, "pooling": str, "positions": str},
        _TOKENS | _HORIZON,
    ),
}  # fmt: skip

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


def family_objectives(family: str) -> frozenset[str]:
    """Everything the family can be trained for, over all the kinds it reads."""
    return get_family(family).objectives


def pair_objectives(family: str, kind: str) -> frozenset[str]:
    """What the family is trained for on a task of `kind`: an RNN classifies texts and forecasts series."""
    return frozenset(name for name in get_family(family).objectives if kind in OBJECTIVES[name].kinds)


def objectives_of(family: str, kind: str) -> list[Objective]:
    """The declarations of the family's objectives on a task of `kind`."""
    return [OBJECTIVES[name] for name in sorted(pair_objectives(family, kind))]


def family_kinds(family: str) -> frozenset[str]:
    """The task kinds the family reads."""
    return get_family(family).kinds


def encoder_families(target: str) -> list[str]:
    """The families whose encoder can initialise a `target` model (an autoencoder's into a CNN)."""
    return sorted(name for name, family in FAMILIES.items() if target in family.encoder_for)


def get_family(family: str) -> Family:
    """What the registry knows of `family` without importing it; an unknown name fails with the known ones."""
    if family not in FAMILIES:
        close = difflib.get_close_matches(family, known_families(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model family {family!r}; known: {known_families()}.{hint}")
    return FAMILIES[family]


def build_model(
    family: str, *, input_shape: tuple[int, ...], num_classes: int, config: dict[str, Any]
) -> Any:
    """Build an `nn.Module` of `family` for inputs of `input_shape` (one sample, e.g. (F,) or (C, H, W))."""
    importlib.import_module(get_family(family).module)
    model = _BUILDERS[family](input_shape=tuple(input_shape), num_classes=num_classes, **config)
    model.family = family  # errors about the model name the family params know it by
    return model
