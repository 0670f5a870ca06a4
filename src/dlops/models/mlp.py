"""Multi-layer perceptron: Linear–BatchNorm–GELU–Dropout blocks and a linear classifier head.

With `vocab_size` set it is a bag-of-words text baseline: token ids (B, L) become normalized counts (B, V)
(padding id 0 ignored), so word order is invisible to it. With `horizon` set it is the lag-window
forecasting baseline: a window (B, L, F) flattened, the next `horizon` scaled values out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from dlops.models.blocks import check_horizon, forecast_loss, last_value, window_shape
from dlops.models.registry import classification_loss, make_config, register_family
from dlops.models.subwords import check_subwords, known_ids


@dataclass(frozen=True)
class MLPConfig:
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 64])
    dropout: float = 0.1
    batch_norm: bool = True
    vocab_size: int | None = None  # set: inputs are token ids (B, L), read as a bag of words
    horizon: int | None = None  # set by the pipeline on a series task: a forecaster of that many steps
    # injected when the tokenizer spells words out: the bag counts vocabulary words, a spelled one as <unk>
    subwords: dict | None = None

    def __post_init__(self) -> None:
        check_horizon(self.horizon)
        check_subwords(self.subwords, self.vocab_size)
        if self.vocab_size is not None and (
            not isinstance(self.vocab_size, int) or isinstance(self.vocab_size, bool) or self.vocab_size < 2
        ):
            raise ValueError(f"model.vocab_size must be an integer >= 2 or null, got {self.vocab_size!r}")
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"model.hidden_sizes must be positive integers, got {self.hidden_sizes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


class MLP(nn.Module):
    """Flattens its input, so it also runs on images as a baseline next to the CNN."""

    def __init__(self, input_dim: int, num_classes: int, config: MLPConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        self.vocab_size = config.vocab_size
        self.spells = config.subwords is not None  # spelled-out ids (>= vocab_size) then count as <unk>
        width = input_dim if config.vocab_size is None else config.vocab_size
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden)]
            if config.batch_norm:
                layers += [nn.BatchNorm1d(hidden)]
            layers += [nn.GELU(), nn.Dropout(config.dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.vocab_size is not None:
            x = bag_of_words(known_ids(x, self.vocab_size) if self.spells else x, self.vocab_size)  # (B, V)
        logits = self.head(self.body(x.flatten(1)))  # (B, K)
        if targets is None:
            return logits, None
        return logits, classification_loss(logits, targets, weights)


class MLPForecaster(nn.Module):
    """The lag-window baseline: the window's values and covariates flattened, the change from the last
    value out for each of the next `horizon` steps."""

    is_classifier = False

    def __init__(self, input_dim: int, horizon: int, config: MLPConfig) -> None:
        super().__init__()
        self.net = MLP(input_dim, horizon, config)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        pred = self.net(x)[0] + last_value(x)  # (B, H)
        return pred, None if targets is None else forecast_loss(pred, targets, weights)


def bag_of_words(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Token ids (B, L) -> counts / length (B, V), ignoring padding id 0."""
    counts = torch.zeros(len(ids), vocab_size, device=ids.device).scatter_add_(
        1, ids, torch.ones(ids.shape, device=ids.device)
    )  # (B, V)
    counts[:, 0] = 0.0
    return counts / counts.sum(1, keepdim=True).clamp(min=1.0)


@register_family("mlp")
def build_mlp(*, input_shape: tuple[int, ...], num_classes: int, **config: object) -> nn.Module:
    cfg = make_config(MLPConfig, config)
    if cfg.horizon is not None:
        lookback, features = window_shape(input_shape, "mlp")
        return MLPForecaster(lookback * features, cfg.horizon, cfg)
    return MLP(math.prod(input_shape), num_classes, cfg)
