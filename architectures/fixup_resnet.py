"""FixupResNet110 for CIFAR (hongyi-zhang/Fixup, as DCTpS uses it): no BatchNorm, Fixup init.

Structure (methods-reference.md s.9), with the reference's module and parameter names:

- ``conv1``: the stem, 3x3 conv C_in -> 16 without bias, PyTorch's default init; ``bias1``.
- ``layer1``, ``layer2``, ``layer3``: 18 :class:`FixupBasicBlock` each, widths 16/32/64; a block
  holds ``bias1a``, ``conv1`` (its first conv), ``bias1b``, ``bias2a``, ``conv2`` (its second
  conv), ``scale`` (init 1) and ``bias2b``; a stride-2 block's shortcut (``downsample``) is a
  1x1 average pool with stride 2 followed by zero-channel padding, without weights.
- ``bias2`` then ``fc``: the classifier, Linear 64 -> C with bias.

Fixup init: every block's first conv is normal with std ``sqrt(2 / (k*k*out)) / sqrt(B)``
(:func:`fixup_std`, ``B = num_blocks = 54``), every block's second conv and the classifier's
weight and bias are zero. A DCTpS implementation finds the blocks with :meth:`FixupResNet.blocks`,
the stem as ``model.conv1`` and the classifier as ``model.fc``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from architectures.cifar_resnet import conv, register_cifar_arch
from architectures.layers import GlobalAvgPool
from architectures.registry import InputShape


def _scalar(value: float) -> nn.Parameter:
    """One trainable scalar (Fixup's biases and multiplier), shaped ``(1,)`` as in the reference."""
    return nn.Parameter(torch.full((1,), value))


def fixup_std(layer: nn.Conv2d, num_blocks: int) -> float:
    """Fixup's std for a block's first conv: He's ``sqrt(2 / (k*k*out))`` times ``B**-0.5``."""
    out_channels, _, kernel_h, kernel_w = layer.weight.shape
    return math.sqrt(2 / (out_channels * kernel_h * kernel_w)) * num_blocks**-0.5


class FixupBasicBlock(nn.Module):
    """Two 3x3 convs with scalar biases and a scalar multiplier in place of BatchNorm."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bias1a = _scalar(0.0)
        self.conv1 = conv(in_planes, planes, 3, stride)
        self.bias1b = _scalar(0.0)
        self.bias2a = _scalar(0.0)
        self.conv2 = conv(planes, planes, 3)
        self.scale = _scalar(1.0)
        self.bias2b = _scalar(0.0)
        self.downsample = nn.AvgPool2d(1, stride=stride) if stride != 1 else None
        self.extra_channels = planes - in_planes

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
        out = self.conv2(out + self.bias2a) * self.scale + self.bias2b
        identity = x
        if self.downsample is not None:
            identity = self.downsample(x + self.bias1a)
        if self.extra_channels:
            identity = F.pad(identity, (0, 0, 0, 0, 0, self.extra_channels))
        return F.relu(out + identity)


class FixupResNet(nn.Module):
    """Three stages of Fixup basic blocks (widths 16/32/64), global pool, scalar bias, Linear."""

    def __init__(
        self, blocks_per_stage: tuple[int, int, int], num_classes: int, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.num_blocks = sum(blocks_per_stage)
        self.conv1 = conv(in_channels, 16, 3)
        self.bias1 = _scalar(0.0)
        stages: list[nn.Sequential] = []
        in_planes = 16
        for index, count in enumerate(blocks_per_stage):
            planes = 16 * 2**index
            strides = [1 if index == 0 else 2] + [1] * (count - 1)
            stage = []
            for stride in strides:
                stage.append(FixupBasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = GlobalAvgPool()
        self.bias2 = _scalar(0.0)
        self.fc = nn.Linear(in_planes, num_classes)
        self.reset_fixup_()

    def blocks(self) -> Iterator[FixupBasicBlock]:
        """Every residual block in order (the ``B`` of Fixup's scaling)."""
        for module in self.modules():
            if isinstance(module, FixupBasicBlock):
                yield module

    @torch.no_grad()
    def reset_fixup_(self) -> None:
        """Fixup init from the default RNG: scaled He first convs, zero second convs and fc."""
        for block in self.blocks():
            std = fixup_std(block.conv1, self.num_blocks)
            nn.init.normal_(block.conv1.weight, mean=0.0, std=std)
            nn.init.zeros_(block.conv2.weight)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.conv1(x) + self.bias1)
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(self.avgpool(out) + self.bias2)


def fixup_resnet110(num_classes: int, input_shape: InputShape) -> nn.Module:
    """FixupResNet110: 3 x 18 blocks, 110 prunable layers, Fixup's own init (no Kaiming re-init)."""
    return FixupResNet((18, 18, 18), num_classes, in_channels=input_shape[0])


register_cifar_arch(
    "fixup_resnet110",
    fixup_resnet110,
    "FixupResNet110 (Fixup): no BatchNorm, scalar biases, Fixup init",
    kaiming_init=False,
)
