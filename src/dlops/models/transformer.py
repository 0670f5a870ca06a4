"""Transformer text classifier: token embedding + positions, pre-norm encoder, CLS/mean/max pool;
with `horizon` set, a series forecaster: windows (B, L, F) projected to d_model, the same encoder.

Inputs are right-padded token ids (B, L), 0 = padding (masked out of attention), 1 = unknown. Positions
(`positions`) are either sinusoidal (Vaswani et al.), added to the embeddings, or ALiBi (Press et al. 2022):
no position vectors, each head's attention score is lowered by a fixed slope times the distance between
the two tokens, or a convolution (`conv`, wav2vec 2.0's and CPVT's convolutional position embedding): a
learned convolution over neighbouring tokens (kernel 3) added to the embeddings, so order enters as
local n-gram features and no table limits the length. Sinusoidal and ALiBi are fixed tables
(non-persistent buffers): nothing extra in the checkpoint.
"""

from __future__ import annotations

import math
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

POSITIONS = ("sinusoidal", "alibi", "conv")
CONV_POSITION_KERNEL = 3  # `positions: conv`: a token and its two neighbours


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int | None = None  # injected by the trainer from the fitted tokenizer
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    dim_feedforward: int = 128
    dropout: float = 0.1
    max_length: int = 512  # longest sequence (without the CLS token) the model accepts
    pooling: str = "cls"  # cls (learned token prepended) | mean | max (over non-padding positions)
    positions: str = "sinusoidal"  # sinusoidal (added) | alibi (distance bias in attention) | conv (learned)
    horizon: int | None = None  # set by the pipeline on a series task: a forecaster of that many steps
    subwords: dict | None = None  # injected when the tokenizer spells words out (models/subwords.py)

    def __post_init__(self) -> None:
        check_horizon(self.horizon)
        if self.horizon is None:
            check_vocab_size(self.vocab_size)
            check_subwords(self.subwords, self.vocab_size)
        elif self.vocab_size is not None:
            raise ValueError("model.vocab_size: a forecaster reads windows of values, not token ids")
        for key in ("d_model", "num_heads", "num_layers", "dim_feedforward", "max_length"):
            if not positive_int(getattr(self, key)):
                raise ValueError(f"model.{key} must be a positive integer, got {getattr(self, key)!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"model.d_model ({self.d_model}) must be divisible by model.num_heads")
        if not in_range(self.dropout, 0.0, 1.0) or self.dropout == 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if self.pooling not in ("cls", "mean", "max"):
            raise ValueError(f"model.pooling must be 'cls', 'mean' or 'max', got {self.pooling!r}")
        if self.positions not in POSITIONS:
            raise ValueError(f"model.positions must be one of {POSITIONS}, got {self.positions!r}")


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (D/2,)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table  # (L, D)


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes: the geometric sequence 2^(-8/H), 2^(-16/H), ... (H,)."""
    return torch.tensor([2.0 ** (-8.0 * (i + 1) / num_heads) for i in range(num_heads)])


def attention_bias(
    config: TransformerConfig, slopes: torch.Tensor, batch: int, length: int, pad: torch.Tensor | None
) -> torch.Tensor | None:
    """The float mask (B * H, L, L) the encoder adds to attention scores: ALiBi's -slope * |i - j|, and
    -1e4 on padded keys; None for sinusoidal positions (the padding mask then goes alone)."""
    if config.positions != "alibi":
        return None
    index = torch.arange(length, device=slopes.device)
    distance = (index[None, :] - index[:, None]).abs().to(slopes.dtype)  # (L, L)
    bias = -slopes[:, None, None] * distance  # (H, L, L)
    bias = bias.unsqueeze(0).expand(batch, -1, -1, -1)  # (B, H, L, L)
    if pad is not None:
        # a large finite value, not -inf (an all -inf row is NaN): exp(-1e4) is exactly 0 in float32, and
        # it stays finite in float16/bfloat16
        bias = bias.masked_fill(pad[:, None, None, :], -1e4)
    return bias.reshape(batch * config.num_heads, length, length)


class ConvPositions(nn.Module):
    """`positions: conv`: h + GELU(Conv1d(h)) over the sequence, zero-padded at both ends, so a token's
    features depend on its neighbours (order) and on the sequence's edges (where it is), at any length.
    Padded positions are zeroed first: a text's states do not depend on how much padding its batch has."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, CONV_POSITION_KERNEL, padding=CONV_POSITION_KERNEL // 2)

    def forward(self, h: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        if pad is not None:
            h = h.masked_fill(pad.unsqueeze(-1), 0.0)  # (B, L, D)
        return h + nn.functional.gelu(self.conv(h.transpose(1, 2))).transpose(1, 2)  # (B, L, D)


def add_positions(
    module: TransformerClassifier | TransformerForecaster, h: torch.Tensor, pad: torch.Tensor | None
) -> torch.Tensor:
    """The embeddings with sinusoidal or convolutional positions; unchanged for ALiBi (in the attention)."""
    if module.conv_positions is not None:
        return module.conv_positions(h, pad)
    if module.config.positions == "sinusoidal":
        return h + module.positions[: h.shape[1]]
    return h


class TransformerClassifier(nn.Module):
    is_classifier = True
    positions: torch.Tensor  # (max_length + 1, D) sinusoidal table, a non-persistent buffer
    slopes: torch.Tensor  # (H,) ALiBi slopes, a non-persistent buffer

    def __init__(self, num_classes: int, config: TransformerConfig) -> None:
        super().__init__()
        assert config.vocab_size is not None
        self.config = config
        d = config.d_model
        self.embedding = token_embedding(config.vocab_size, d, config.subwords)
        self.register_buffer("positions", sinusoidal_positions(config.max_length + 1, d), persistent=False)
        self.register_buffer("slopes", alibi_slopes(config.num_heads), persistent=False)
        self.conv_positions = ConvPositions(d) if config.positions == "conv" else None
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02) if config.pooling == "cls" else None
        self.encoder = encoder_stack(config)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(d, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled sequence features (B, D) for token ids (B, L)."""
        h, pad = self._encode(x)
        if self.cls is not None:
            return h[:, 0]  # (B, D)
        return pool_steps(h, pad, self.config.pooling)  # mean, or max: Kim's max-over-time

    def token_states(self, x: torch.Tensor) -> torch.Tensor:
        """One state per token position (B, L', D), L' = the batch's longest text (masked-token
        pretraining, evaluation/text_pretraining.py)."""
        h, _ = self._encode(x)
        return h[:, 1:] if self.cls is not None else h

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states (B, [1 +] L', D) and the padding mask (True = ignored) for token ids (B, L)."""
        lengths = (x != 0).sum(1)  # (B,)
        x = x[:, : max(int(lengths.max()), 1)]  # drop all-padding columns: exact padding invariance, faster
        if x.shape[1] > self.config.max_length:
            raise ValueError(
                f"sequence length {x.shape[1]} exceeds model.max_length={self.config.max_length}"
            )
        pad = x == 0  # (B, L), True = ignored by attention
        pad[:, 0] = False  # an empty sequence still attends to something (no NaN)
        h = self.embedding(x)  # (B, L, D)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(x), -1, -1), h], dim=1)  # (B, 1 + L, D)
            pad = torch.cat([pad.new_zeros(len(x), 1), pad], dim=1)  # (B, 1 + L)
        bias = attention_bias(self.config, self.slopes, len(x), h.shape[1], pad)
        if bias is not None:  # ALiBi: positions live in the attention scores, padding with them
            return self.encoder(self.dropout(h), mask=bias), pad  # (B, L', D), (B, L')
        h = self.dropout(add_positions(self, h, pad))
        return self.encoder(h, src_key_padding_mask=pad), pad  # (B, L', D), (B, L')

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.head(self.dropout(self.features(x)))  # (B, K)
        if targets is None:
            return logits, None
        return logits, classification_loss(logits, targets, weights)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU that PyTorch does not recognise as its own, which keeps an encoder off the inference fast path."""
    return nn.functional.gelu(x)


def encoder_stack(config: TransformerConfig) -> nn.TransformerEncoder:
    # ALiBi's per-head float mask (B * H, L, L) comes out NaN on torch 2.13's CPU inference fast path
    # (`_transformer_encoder_layer_fwd`); the same layers on the regular path are exact
    activation = _gelu if config.positions == "alibi" else "gelu"
    layer = nn.TransformerEncoderLayer(
        config.d_model, config.num_heads, config.dim_feedforward, config.dropout, activation=activation,
        batch_first=True, norm_first=True,
    )  # fmt: skip
    return nn.TransformerEncoder(
        layer, config.num_layers, norm=nn.LayerNorm(config.d_model), enable_nested_tensor=False
    )


class TransformerForecaster(nn.Module):
    """Windows (B, L, F) -> a linear projection to d_model + sinusoidal positions (+ a CLS token) -> the
    pre-norm encoder -> CLS or mean pooling -> the change from the last value for the next `horizon` steps."""

    is_classifier = False
    positions: torch.Tensor  # (max_length + 1, D)
    slopes: torch.Tensor  # (H,)

    def __init__(self, features: int, horizon: int, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.project = nn.Linear(features, d)
        self.register_buffer("positions", sinusoidal_positions(config.max_length + 1, d), persistent=False)
        self.register_buffer("slopes", alibi_slopes(config.num_heads), persistent=False)
        self.conv_positions = ConvPositions(d) if config.positions == "conv" else None
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02) if config.pooling == "cls" else None
        self.encoder = encoder_stack(config)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(d, horizon)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.project(x)  # (B, L, D)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(x), -1, -1), h], dim=1)  # (B, 1 + L, D)
        bias = attention_bias(self.config, self.slopes, len(x), h.shape[1], None)
        h = add_positions(self, h, None)
        h = self.encoder(self.dropout(h), mask=bias)  # (B, L', D)
        pooled = h[:, 0] if self.cls is not None else h.amax(1) if self.config.pooling == "max" else h.mean(1)
        pred = self.head(self.dropout(pooled)) + last_value(x)  # (B, H)
        return pred, None if targets is None else forecast_loss(pred, targets, weights)


@register_family("transformer")
def build_transformer(*, input_shape: tuple[int, ...], num_classes: int, **config: object) -> nn.Module:
    cfg = make_config(TransformerConfig, config)
    if cfg.horizon is not None:
        lookback, features = window_shape(input_shape, "transformer")
        if lookback > cfg.max_length:
            raise ValueError(f"model.max_length={cfg.max_length} is below the lookback {lookback}")
        return TransformerForecaster(features, cfg.horizon, cfg)
    if text_length(input_shape, "transformer") > cfg.max_length:
        raise ValueError(f"model.max_length={cfg.max_length} is below the input length {input_shape[0]}")
    return TransformerClassifier(num_classes, cfg)
