"""MobileNetV2 in the CIFAR variant of kuangliu/pytorch-cifar, as FORCE and DCTpS use it.

Stem 3x3 conv -> 32 with stride 1; blocks (expansion, out, repeats, stride) = (1,16,1,1),
(6,24,2,1), (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1); each block is a 1x1
expansion conv (even for expansion 1), a depthwise 3x3 and a 1x1 projection, each + BN; stride-1
blocks add a shortcut (1x1 conv + BN when the width changes, 4 such convs; identity otherwise),
stride-2 blocks none; then 1x1 conv 320 -> 1280 + BN + ReLU, global average pool (the reference's
4x4 pool on CIFAR) and Linear 1280 -> C with bias (methods-reference.md s.9). Module names are the
reference's: ``conv1``, ``bn1``, ``layers``, ``conv2``, ``bn2``, ``linear``.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from architectures.cifar_resnet import conv, conv_bn, register_cifar_arch
from architectures.layers import GlobalAvgPool
from architectures.registry import InputShape

# (expansion, out_planes, num_blocks, stride); the second stage's stride is 1 on CIFAR.
MOBILENETV2_CONFIG: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise 3x3, 1x1 project; residual on stride-1 blocks."""

    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        planes = expansion * in_planes
        self.residual = stride == 1
        self.conv1 = conv(in_planes, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, stride, groups=planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv(planes, out_planes, 1)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut: nn.Module = (
            conv_bn(in_planes, out_planes)
            if self.residual and in_planes != out_planes
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.residual else out


class MobileNetV2(nn.Module):
    """The CIFAR MobileNetV2 (stride-1 stem and second stage), 58 prunable layers."""

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = conv(in_channels, 32, 3)
        self.bn1 = nn.BatchNorm2d(32)
        blocks: list[nn.Module] = []
        in_planes = 32
        for expansion, out_planes, num_blocks, stride in MOBILENETV2_CONFIG:
            for block_stride in [stride] + [1] * (num_blocks - 1):
                blocks.append(MobileBlock(in_planes, out_planes, expansion, block_stride))
                in_planes = out_planes
        self.layers = nn.Sequential(*blocks)
        self.conv2 = conv(in_planes, 1280, 1)
        self.bn2 = nn.BatchNorm2d(1280)
        self.pool = GlobalAvgPool()
        self.linear = nn.Linear(1280, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(self.layers(out))))
        return self.linear(self.pool(out))


def mobilenetv2(num_classes: int, input_shape: InputShape) -> nn.Module:
    """CIFAR MobileNetV2 (kuangliu): 2.26M prunable weights, 4 shortcut convs."""
    return MobileNetV2(num_classes, in_channels=input_shape[0])


register_cifar_arch(
    "mobilenetv2", mobilenetv2, "MobileNetV2, CIFAR variant (kuangliu): stride-1 stem"
)
