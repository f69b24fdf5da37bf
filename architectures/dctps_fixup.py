"""DCTpS on Fixup ResNets: the alpha each layer starts from (the reference's, or matched norms)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from architectures.dct import dctps_offset
from architectures.prunable import prunable_layers

FixupAlpha = Literal["reference", "norm"]


def is_fixup_resnet(model: nn.Module) -> bool:
    """A Fixup ResNet (architectures/fixup_resnet.py): ``blocks()``, stem ``conv1``, ``fc``."""
    return all(hasattr(model, attr) for attr in ("blocks", "conv1", "fc")) and callable(
        model.blocks
    )


def fixup_alpha(
    weight_shape: torch.Size | tuple[int, ...], num_blocks: int, mode: FixupAlpha
) -> float:
    """``alpha`` of a Fixup block's first conv (DC ``DCTplusSparseFixupResNet``).

    ``nu = sqrt(2) sigma Gamma((p+1)/2) / Gamma(p/2)`` is the mean norm of a Gaussian filter of
    length ``p = in*kh*kw`` with Fixup's std ``sigma = sqrt(2/(kh*kw*out)) / sqrt(B)``; divided by
    the mean norm of D's filters it gives ``"norm"``; the reference takes its square root
    (``"reference"``, defect 11 of methods-reference.md s.8).
    """
    out, cin, kh, kw = (int(s) for s in weight_shape)
    p = cin * kh * kw
    sigma = math.sqrt(2.0 / (kh * kw * out)) / math.sqrt(num_blocks)
    nu = math.sqrt(2.0) * sigma * math.exp(math.lgamma((p + 1) / 2) - math.lgamma(p / 2))
    filters = dctps_offset(weight_shape, dtype=torch.float64).reshape(out, -1)
    mean_norm = float(filters.norm(dim=1).mean())
    ratio = nu / mean_norm
    if mode == "reference":
        return math.sqrt(ratio)
    if mode == "norm":
        return ratio
    raise ValueError(f"unknown fixup_alpha mode {mode!r} (valid: 'reference', 'norm')")


def fixup_alphas(model: nn.Module, mode: FixupAlpha = "reference") -> dict[str, float]:
    """``alpha`` for every prunable layer of a (dense) Fixup ResNet, keyed like the masks.

    Stem 1; classifier and every block's second conv 0 (Fixup zeroes them); every block's first
    conv :func:`fixup_alpha`; any other layer 1.
    """
    if not is_fixup_resnet(model):
        raise ValueError("fixup_alphas needs a Fixup ResNet (blocks(), conv1 and fc)")
    names = {id(module): name for name, module in model.named_modules()}
    alphas = {layer.name: 1.0 for layer in prunable_layers(model)}
    blocks = list(model.blocks())
    for block in blocks:
        prefix = names[id(block)]
        alphas[f"{prefix}.conv1.weight"] = fixup_alpha(block.conv1.weight.shape, len(blocks), mode)
        alphas[f"{prefix}.conv2.weight"] = 0.0
    alphas[f"{names[id(model.fc)]}.weight"] = 0.0
    return alphas
