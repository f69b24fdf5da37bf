"""Layers the zoo shares: global average pooling as a plain mean.

``nn.AdaptiveAvgPool2d(1)`` has no deterministic CUDA backward (PyTorch's
``torch.use_deterministic_algorithms`` names it), so a GPU run in deterministic mode would warn or
fail on every model that pooled with it. A mean over the spatial dimensions computes the same
numbers (its backward is an expand, deterministic on every device), has no parameters, and
leaves every parameter name and count unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn


class GlobalAvgPool(nn.Module):
    """Average over height and width: ``(N, C, H, W) -> (N, C)``.

    Equal to ``nn.AdaptiveAvgPool2d(1)`` followed by ``flatten(1)`` (to float rounding), with a
    deterministic backward on CUDA.
    """

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))
