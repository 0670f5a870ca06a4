"""Convolutional classifier: Conv–BatchNorm–ReLU blocks with max-pooling, global average pool, linear head."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dlops.models.blocks import image_shape, in_range, positive_ints
from dlops.models.registry import classification_loss, make_config, register_family


@dataclass(frozen=True)
class CNNConfig:
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # one block (two convs + pool) each
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not positive_ints(self.channels):
            raise ValueError(f"model.channels must be a list of positive integers, got {self.channels}")
        if not in_range(self.dropout, 0.0, 1.0) or self.dropout == 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class CNN(nn.Module):
    is_classifier = True

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, config: CNNConfig) -> None:
        super().__init__()
        c_in, h, w = input_shape
        layers: list[nn.Module] = []
        for c_out in config.channels:
            layers += [*conv_bn_relu(c_in, c_out), *conv_bn_relu(c_out, c_out)]
            if min(h, w) >= 2:  # pool while there is something to pool, so 8x8 inputs work too
                layers += [nn.MaxPool2d(2)]
                h, w = h // 2, w // 2
            layers += [nn.Dropout2d(config.dropout / 2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, D), e.g. for a Fréchet distance in this network's feature space."""
        return self.body(x).mean(dim=(2, 3))  # (B, D)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.head(self.dropout(self.features(x)))  # (B, K)
        if targets is None:
            return logits, None
        return logits, classification_loss(logits, targets, weights)


@register_family("cnn")
def build_cnn(*, input_shape: tuple[int, ...], num_classes: int, **config: object) -> CNN:
    cfg = make_config(CNNConfig, config)
    return CNN(image_shape(input_shape, "cnn"), num_classes, cfg)
