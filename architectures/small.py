"""Small models for the embedded ``digits`` data set (1x8x8) and other quick CPU work."""

from __future__ import annotations

import math

from torch import nn

from architectures.layers import GlobalAvgPool
from architectures.registry import InputShape, register


@register("mlp", description="MLP, 2 hidden layers of 256 (digits default)")
def mlp(num_classes: int, input_shape: InputShape, hidden: int = 256) -> nn.Module:
    """Two hidden ReLU layers; three prunable Linear layers."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


@register(
    "small_cnn",
    description="3 conv (32/64/64) + BN + linear",
    accepts=lambda shape: shape[1] >= 2 and shape[2] >= 2,
    accepts_text="any image of at least 2x2 pixels",
)
def small_cnn(num_classes: int, input_shape: InputShape, width: int = 32) -> nn.Module:
    """Two 3x3 conv + BatchNorm blocks, a 2x2 max-pool, global average pool and a classifier."""
    channels = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        GlobalAvgPool(),
        nn.Flatten(),  # a no-op after the pool, kept so that layer indices do not move
        nn.Linear(2 * width, num_classes),
    )
