"""LeNet-5 as DCTpS uses it for its Figure 1 (DC ``code/models.py::LeNet``), without biases.

5x5 convs C_in -> 6, 6 -> 16, 16 -> 120, each + ReLU, a 2x2 pool after the first two, then
Linear 120 -> 82 + ReLU and Linear 82 -> C; 61,510 weights for 3x32x32 inputs and 10 classes.
The reference pools by averaging (``nn.AvgPool2d``); ``pool="max"`` gives the classic max-pool
variant with the same parameters. It accepts 28x28 and 32x32 inputs with any channel count:
28x28 inputs (Fashion-MNIST) are zero-padded by 2 in the first conv, as the classic LeNet on
MNIST, so that the third conv sees a 5x5 map and outputs 120 features.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from architectures.registry import InputShape, register

LENET_SIDES = (28, 32)
# The paper trains LeNet-5 with batch 64 for 160 epochs whatever the optimiser (Table 4's
# caption): a fact of the network, applied by the run pipeline on top of the preset.
LENET_TRAINING = {"batch_size": 64, "epochs": 160}
_POOLS: dict[str, type[nn.Module]] = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(nn.Module):
    """Three 5x5 convs and two Linear layers, all bias-free (reference names ``convs``, ``fcs``)."""

    def __init__(
        self, num_classes: int, input_shape: InputShape, pool: Literal["avg", "max"] = "avg"
    ) -> None:
        super().__init__()
        if pool not in _POOLS:
            raise ValueError(f"pool must be one of {sorted(_POOLS)}, not {pool!r}")
        channels, height, _ = input_shape
        pool_type = _POOLS[pool]
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=(32 - height) // 2, bias=False),
            nn.ReLU(),
            pool_type(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, 5, bias=False),
            nn.ReLU(),
            pool_type(kernel_size=2, stride=2),
            nn.Conv2d(16, 120, 5, bias=False),
            nn.ReLU(),
        )
        self.fcs = nn.Sequential(
            nn.Linear(120, 82, bias=False),
            nn.ReLU(),
            nn.Linear(82, num_classes, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.fcs(self.convs(x).flatten(1))


def lenet_accepts(shape: InputShape) -> bool:
    """Square 28x28 or 32x32 images with any channel count (the conv stack needs a 32x32 view)."""
    channels, height, width = shape
    return channels >= 1 and height == width and height in LENET_SIDES


@register(
    "lenet5",
    description="LeNet-5 (DCTpS figure 1): 3 convs + 2 linear, no bias, 61.5k weights",
    accepts=lenet_accepts,
    accepts_text=(
        "28x28 or 32x32 images with any number of channels "
        "(Fashion-MNIST 1x28x28, CIFAR 3x32x32; 28x28 is zero-padded by 2)"
    ),
    training_overrides=LENET_TRAINING,
)
def lenet5(
    num_classes: int, input_shape: InputShape, pool: Literal["avg", "max"] = "avg"
) -> nn.Module:
    """LeNet-5 of DCTpS's Figure 1: 5 prunable layers, no biases."""
    return LeNet5(num_classes, input_shape, pool=pool)
