"""CIFAR ResNet18 and ResNet50 of FORCE and DCTpS, plus the conv helpers the CIFAR zoo shares.

The CIFAR variant (FO ``experiments/models.py``, DC ``code/models.py``; methods-reference.md s.9):
a 3x3 stride-1 stem conv without bias + BatchNorm + ReLU and **no max-pool**, four stages of
basic (ResNet18, [2, 2, 2, 2]) or bottleneck (ResNet50, [3, 4, 6, 3], expansion 4, stride on the
3x3 conv) blocks of widths 64/128/256/512, a projection shortcut (1x1 conv with stride, no bias,
+ BatchNorm) wherever the stride is not 1 or the channel count changes, global average pooling
and a Linear classifier with bias.

Module names are the reference's (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``; in a block
``conv1``/``bn1``/``conv2``/``bn2``[/``conv3``/``bn3``] then ``shortcut``), so the registration
order, and with it the flat index of every prunable weight, is the reference's.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from architectures.layers import GlobalAvgPool
from architectures.registry import ArchSpec, Factory, InputShape, register_arch

MIN_SIDE = 28
CIFAR_ACCEPTS_TEXT = (
    f"images with any number of channels and height and width of at least {MIN_SIDE} "
    "(Fashion-MNIST 1x28x28, CIFAR 3x32x32, Tiny ImageNet 3x64x64; not the 1x8x8 digits)"
)


def cifar_accepts(shape: InputShape) -> bool:
    """Whether a CIFAR-zoo model takes ``(C, H, W)`` inputs: global pooling needs H, W >= 28."""
    channels, height, width = shape
    return channels >= 1 and min(height, width) >= MIN_SIDE


def register_cifar_arch(
    name: str, factory: Factory, description: str, *, kaiming_init: bool = True
) -> ArchSpec:
    """Register a CIFAR-zoo model with the zoo's shared input rule (H, W >= 28)."""
    return register_arch(
        ArchSpec(
            name,
            factory,
            description,
            accepts=cifar_accepts,
            accepts_text=CIFAR_ACCEPTS_TEXT,
            kaiming_init=kaiming_init,
        )
    )


def conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
) -> nn.Conv2d:
    """A bias-free conv with ``kernel_size // 2`` padding, the only kind of conv the zoo uses."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        groups=groups,
        bias=False,
    )


def conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """A 1x1 bias-free conv + BatchNorm: the projection shortcut of ResNet/MobileNetV2 blocks."""
    return nn.Sequential(conv(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Projection where the stride or the width changes, identity otherwise (the reference rule)."""
    if stride != 1 or in_planes != out_planes:
        return conv_bn(in_planes, out_planes, stride)
    return nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with a residual connection (ResNet18)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv(in_planes, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, strided 3x3, 1x1 expand by 4, each + BN, plus a residual (ResNet50)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv(in_planes, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv(planes, planes * self.expansion, 1)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The four-stage CIFAR ResNet: stride-1 stem without max-pool, global pool, Linear."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: tuple[int, int, int, int],
        num_classes: int,
        in_channels: int = 3,
        width: int = 64,
    ) -> None:
        super().__init__()
        self.conv1 = conv(in_channels, width, 3)
        self.bn1 = nn.BatchNorm2d(width)
        stages: list[nn.Sequential] = []
        in_planes = width
        for index, blocks in enumerate(num_blocks):
            planes = width * 2**index
            strides = [1 if index == 0 else 2] + [1] * (blocks - 1)
            stage = []
            for stride in strides:
                stage.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = GlobalAvgPool()
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(self.avgpool(out))


def resnet18(num_classes: int, input_shape: InputShape, width: int = 64) -> nn.Module:
    """CIFAR ResNet18: basic blocks [2, 2, 2, 2], 21 prunable layers, 3 shortcut convs.

    ``width`` is the first stage's channel count (64 in the paper); the stages double it.
    """
    return CifarResNet(
        BasicBlock, (2, 2, 2, 2), num_classes, in_channels=input_shape[0], width=width
    )


def resnet18_w16(num_classes: int, input_shape: InputShape) -> nn.Module:
    """ResNet18 at a quarter of the width (16/32/64/128 channels): the CPU-scale study's variant.

    Same depth, layer layout, shortcut convs and prunable-layer count (21) as ``resnet18``, with
    about 1/16 of its weights (699,056 for 10 classes) and of its multiply-adds.
    """
    return resnet18(num_classes, input_shape, width=16)


def resnet50(num_classes: int, input_shape: InputShape) -> nn.Module:
    """CIFAR ResNet50: bottleneck blocks [3, 4, 6, 3], 54 prunable layers, 4 shortcut convs."""
    return CifarResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels=input_shape[0])


register_cifar_arch("resnet18", resnet18, "CIFAR ResNet18 (FORCE/DCTpS): 3x3 stem, no max-pool")
register_cifar_arch(
    "resnet18_w16", resnet18_w16, "ResNet18 at 1/4 width (16-128 channels), for CPU-scale studies"
)
register_cifar_arch("resnet50", resnet50, "CIFAR ResNet50 (FORCE/DCTpS): 3x3 stem, no max-pool")
