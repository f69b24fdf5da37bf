"""VGG19 with BatchNorm as FORCE and DCTpS use it on CIFAR and Tiny ImageNet.

Config 64, 64, M, 128, 128, M, 256 x4, M, 512 x4, M, 512 x4 (four max-pools, none after the last
block); every conv 3x3, padding 1, no bias, BatchNorm (affine) + ReLU; then an average pool over
the whole final map (the reference's 2x2 on CIFAR, 4x4 on Tiny ImageNet) and a single Linear
512 -> C with bias; no dropout, no hidden FC layers (methods-reference.md s.9). Module names are
the reference's: ``feature`` (a flat Sequential) and ``classifier``.
"""

from __future__ import annotations

from torch import Tensor, nn

from architectures.cifar_resnet import conv, register_cifar_arch
from architectures.registry import InputShape

MAX_POOL = "M"
VGG19_CONFIG: tuple[int | str, ...] = (
    *(64, 64, MAX_POOL),
    *(128, 128, MAX_POOL),
    *(256,) * 4,
    MAX_POOL,
    *(512,) * 4,
    MAX_POOL,
    *(512,) * 4,
)


class VGG(nn.Module):
    """Conv + BN + ReLU stacks with 2x2 max-pools, a final average pool to 1x1 and one Linear."""

    def __init__(
        self, config: tuple[int | str, ...], num_classes: int, input_shape: InputShape
    ) -> None:
        super().__init__()
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for entry in config:
            if entry == MAX_POOL:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                height, width = height // 2, width // 2
            else:
                out_channels = int(entry)
                layers += [conv(channels, out_channels, 3), nn.BatchNorm2d(out_channels), nn.ReLU()]
                channels = out_channels
        self.feature = nn.Sequential(*layers)
        # The pool covers the final map: 2x2 for 32x32 inputs, 4x4 for 64x64, 1x1 for 28x28.
        self.pool = nn.AvgPool2d((height, width))
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.feature(x)).flatten(1))


def vgg19(num_classes: int, input_shape: InputShape) -> nn.Module:
    """VGG19-BN for CIFAR/Tiny ImageNet: 16 convs + one Linear, 17 prunable layers."""
    return VGG(VGG19_CONFIG, num_classes, input_shape)


register_cifar_arch("vgg19", vgg19, "VGG19-BN (FORCE/DCTpS): 16 convs, avg pool, one Linear")
