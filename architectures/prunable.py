"""The one rule for what a prune-at-initialization method may prune.

Prunable weights are the ``weight`` tensors of every ``nn.Conv2d`` and ``nn.Linear`` (classifier
and 1x1 shortcut convolutions included), in module registration order; biases, BatchNorm and
every other parameter are never pruned and never counted (design.md, methods-reference.md s.1).
Every module of the project that needs this list calls :func:`prunable_parameters`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class PrunableLayer:
    """One prunable weight: its ``named_parameters()`` name, owning module and tensor."""

    name: str
    module_name: str
    module: nn.Module
    weight: torch.Tensor

    @property
    def numel(self) -> int:
        return self.weight.numel()

    @property
    def out_features(self) -> int:
        """Output channels of a conv, output rows of a linear (the 'filters' of EPF)."""
        return int(self.weight.shape[0])


def _original_weight(module: nn.Module) -> torch.Tensor:
    """The stored weight tensor, looking through a mask parametrization if one is registered."""
    parametrizations = getattr(module, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        return parametrizations["weight"].original
    return module.weight


def prunable_layers(model: nn.Module) -> list[PrunableLayer]:
    """Every prunable weight of ``model`` in registration order, keyed like ``named_parameters()``.

    A masked weight is found through its parametrization. DCTpS layers are deliberately not
    ``Conv2d``/``Linear`` subclasses, so a DCTpS network has no prunable weights left.
    """
    layers: list[PrunableLayer] = []
    for module_name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            name = f"{module_name}.weight" if module_name else "weight"
            layers.append(PrunableLayer(name, module_name, module, _original_weight(module)))
    return layers


def prunable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{name: weight}`` for every prunable weight, in layer order."""
    return {layer.name: layer.weight for layer in prunable_layers(model)}


def count_prunable(model: nn.Module) -> int:
    """N, the number of prunable weights."""
    return sum(layer.numel for layer in prunable_layers(model))


@dataclass(frozen=True)
class ParameterCount:
    """The paper's Table 2 breakdown: prunable weights, everything else, total, layer count."""

    weights: int
    other: int
    total: int
    prunable_layers: int


def parameter_count(model: nn.Module) -> ParameterCount:
    """Count prunable weights versus bias/BN/other trainable parameters (Table 2)."""
    layers = prunable_layers(model)
    weight_ids = {id(layer.weight) for layer in layers}
    weights = sum(layer.numel for layer in layers)
    other = sum(p.numel() for p in model.parameters() if id(p) not in weight_ids)
    return ParameterCount(weights, other, weights + other, len(layers))
