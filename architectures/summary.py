"""Parameter breakdowns (the paper's Table 2) computed on the meta device, without allocating."""

from __future__ import annotations

import torch
from torch import nn

from architectures.prunable import ParameterCount, parameter_count
from architectures.registry import InputShape, build

DEFAULT_INPUT_SHAPE: InputShape = (3, 32, 32)


def build_meta(
    name: str,
    num_classes: int,
    *,
    input_shape: InputShape = DEFAULT_INPUT_SHAPE,
    **options: object,
) -> nn.Module:
    """Build ``name`` with every tensor on the meta device: shapes only, no memory, no init cost.

    Input validation is :func:`~architectures.registry.build`'s, so a shape the architecture does
    not accept raises ``UnknownArchitecture`` here too.
    """
    with torch.device("meta"):
        return build(name, num_classes, input_shape=input_shape, **options)


def summarize(
    name: str, num_classes: int = 10, input_shape: InputShape | None = None
) -> ParameterCount:
    """Prunable weights, bias/BN/other parameters, total and prunable-layer count of ``name``."""
    shape = DEFAULT_INPUT_SHAPE if input_shape is None else tuple(input_shape)
    return parameter_count(build_meta(name, num_classes, input_shape=shape))
