"""Recurrent models: a text classifier (token embedding, packed (bi)LSTM/GRU, last-state or mean pooling,
linear head) and, with `horizon` set, a series forecaster (the same recurrent core over windows).

Text inputs are right-padded token ids (B, L), 0 = padding, 1 = unknown; lengths are the non-zero counts.
Series inputs are windows (B, L, F) of scaled values and covariates, all steps present.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlops.models.blocks import (
    check_horizon,
    check_vocab_size,
    forecast_loss,
    in_range,
    last_value,
    pool_steps,
    positive_int,
    text_length,
    window_shape,
)
from dlops.models.registry import classification_loss, make_config, register_family
from dlops.models.subwords import check_subwords, token_embedding


@dataclass(frozen=True)
class RNNConfig:
    vocab_size: int | None = None  # injected by the trainer from the fitted tokenizer
    embedding_dim: int = 64
    hidden_size: int = 64
    num_layers: int = 1
    cell: str = "lstm"  # lstm | gru
    bidirectional: bool = True
    dropout: float = 0.2
    pooling: str = "last"  # last (final hidden state per direction) | mean | max (over non-padding steps)
    horizon: int | None = None  # set by the pipeline on a series task: a forecaster of that many steps
    subwords: dict | None = None  # injected when the tokenizer spells words out (models/subwords.py)

    def __post_init__(self) -> None:
        check_horizon(self.horizon)
        if self.horizon is None:
            check_vocab_size(self.vocab_size)
            check_subwords(self.subwords, self.vocab_size)
        elif self.vocab_size is not None:
            raise ValueError("model.vocab_size: a forecaster reads windows of values, not token ids")
        for key in ("embedding_dim", "hidden_size", "num_layers"):
            if not positive_int(getattr(self, key)):
                raise ValueError(f"model.{key} must be a positive integer, got {getattr(self, key)!r}")
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"model.cell must be 'lstm' or 'gru', got {self.cell!r}")
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"model.bidirectional must be true or false, got {self.bidirectional!r}")
        if not in_range(self.dropout, 0.0, 1.0) or self.dropout == 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if self.pooling not in ("last", "mean", "max"):
            raise ValueError(f"model.pooling must be 'last', 'mean' or 'max', got {self.pooling!r}")


class RNNClassifier(nn.Module):
    is_classifier = True

    def __init__(self, num_classes: int, config: RNNConfig) -> None:
        super().__init__()
        assert config.vocab_size is not None
        self.config = config
        self.embedding = token_embedding(config.vocab_size, config.embedding_dim, config.subwords)
        self.rnn = recurrent_core(config)
        self.directions = 2 if config.bidirectional else 1
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size * self.directions, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled sequence features (B, D) for token ids (B, L)."""
        out, hidden, lengths = self._run(x)
        if self.config.pooling == "last":
            h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers * dirs, B, H), input order
            return h_n[-self.directions :].transpose(0, 1).flatten(1)  # (B, dirs * H)
        padded, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)  # (B, L', dirs * H)
        past_end = torch.arange(padded.shape[1], device=padded.device)[None, :] >= lengths[:, None]  # (B, L')
        return pool_steps(padded, past_end, self.config.pooling)  # mean or max (InferSent's BiLSTM-max)

    def token_states(self, x: torch.Tensor) -> torch.Tensor:
        """One state per token position (B, L', dirs * H), L' = the batch's longest text, zero past each
        text's end (masked-token pretraining, evaluation/text_pretraining.py)."""
        out, _, _ = self._run(x)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]

    def _run(self, x: torch.Tensor) -> tuple[nn.utils.rnn.PackedSequence, torch.Tensor, torch.Tensor]:
        """The recurrent core over the packed texts: (packed outputs, final hidden state(s), lengths)."""
        lengths = (x != 0).sum(1).clamp(min=1)  # (B,)
        emb = self.dropout(self.embedding(x))  # (B, L, E)
        packed = nn.utils.rnn.pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        return out, hidden, lengths

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.head(self.dropout(self.features(x)))  # (B, K)
        if targets is None:
            return logits, None
        return logits, classification_loss(logits, targets, weights)


def recurrent_core(config: RNNConfig) -> nn.Module:
    rnn_cls = nn.LSTM if config.cell == "lstm" else nn.GRU
    return rnn_cls(
        config.embedding_dim,
        config.hidden_size,
        num_layers=config.num_layers,
        batch_first=True,
        bidirectional=config.bidirectional,
        dropout=config.dropout if config.num_layers > 1 else 0.0,  # between layers only
    )


class RNNForecaster(nn.Module):
    """Windows (B, L, F) -> a linear projection to `embedding_dim` -> the recurrent core -> the change
    from the window's last value for each of the next `horizon` steps (B, H)."""

    is_classifier = False

    def __init__(self, features: int, horizon: int, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.project = nn.Linear(features, config.embedding_dim)
        self.rnn = recurrent_core(config)
        self.directions = 2 if config.bidirectional else 1
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size * self.directions, horizon)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, hidden = self.rnn(self.project(x))  # (B, L, dirs * H_rnn)
        if self.config.pooling == "last":
            h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers * dirs, B, H_rnn)
            features = h_n[-self.directions :].transpose(0, 1).flatten(1)  # (B, dirs * H_rnn)
        elif self.config.pooling == "max":
            features = out.amax(1)  # (B, dirs * H_rnn)
        else:
            features = out.mean(1)  # (B, dirs * H_rnn)
        pred = self.head(self.dropout(features)) + last_value(x)  # (B, H)
        return pred, None if targets is None else forecast_loss(pred, targets, weights)


@register_family("rnn")
def build_rnn(*, input_shape: tuple[int, ...], num_classes: int, **config: object) -> nn.Module:
    cfg = make_config(RNNConfig, config)
    if cfg.horizon is not None:
        _, features = window_shape(input_shape, "rnn")
        return RNNForecaster(features, cfg.horizon, cfg)
    text_length(input_shape, "rnn")
    return RNNClassifier(num_classes, cfg)
