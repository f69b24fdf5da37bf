"""An allocation's result: one boolean mask per prunable weight, its cost, and how to apply it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from architectures import prunable_layers
from methods.cost import AllocationCost


@dataclass(frozen=True)
class LayerAllocation:
    """Kept and total weights of one prunable layer."""

    name: str
    kept: int
    total: int


class WeightMask(nn.Module):
    """Parametrization ``W -> W * mask``: masked entries stay exactly zero under any optimizer."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


@dataclass
class Allocation:
    """What ``Method.allocate`` returns.

    ``masks`` maps each prunable weight's ``named_parameters()`` name to a CPU bool tensor of its
    shape (True = kept). ``transform``, when set (DCTpS), replaces plain masking in :meth:`apply`.
    ``info`` records choices that change results (objective, batches used, ...).
    """

    method: str
    density: float
    masks: dict[str, torch.Tensor]
    cost: AllocationCost | None = None
    info: dict[str, Any] = field(default_factory=dict)
    transform: Callable[[nn.Module, Allocation], nn.Module] | None = None

    @property
    def kept(self) -> int:
        return sum(int(mask.sum()) for mask in self.masks.values())

    @property
    def total(self) -> int:
        return sum(mask.numel() for mask in self.masks.values())

    @property
    def achieved_density(self) -> float:
        return self.kept / self.total

    def layers(self) -> list[LayerAllocation]:
        """Kept/total per prunable layer, in layer order."""
        return [
            LayerAllocation(name, int(mask.sum()), mask.numel())
            for name, mask in self.masks.items()
        ]

    def apply(self, model: nn.Module) -> nn.Module:
        """Enforce the allocation on ``model`` in place and return it.

        Sparse methods zero the pruned entries and register a :class:`WeightMask`
        parametrization, so the effective weight stays exactly zero off the mask under any
        optimizer and weight decay. A method with a ``transform`` (DCTpS) swaps layers instead.
        """
        if self.transform is not None:
            return self.transform(model, self)
        layers = {layer.name: layer for layer in prunable_layers(model)}
        missing = sorted(set(layers) - set(self.masks))
        unknown = sorted(set(self.masks) - set(layers))
        if missing or unknown:
            raise ValueError(
                f"allocation does not match the model: missing masks {missing}, unknown {unknown}"
            )
        for name, mask in self.masks.items():
            layer = layers[name]
            if tuple(mask.shape) != tuple(layer.weight.shape):
                raise ValueError(
                    f"mask {name!r} has shape {tuple(mask.shape)}, weight has "
                    f"{tuple(layer.weight.shape)}"
                )
            device_mask = mask.to(layer.weight.device)
            with torch.no_grad():
                layer.weight.mul_(device_mask)
            parametrize.register_parametrization(layer.module, "weight", WeightMask(device_mask))
        return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Bake the masks into plain weights (zeros stay zeros) and drop the parametrizations."""
    for layer in prunable_layers(model):
        if parametrize.is_parametrized(layer.module, "weight"):
            parametrize.remove_parametrizations(layer.module, "weight", leave_parametrized=True)
    return model


def trainable_parameter_count(model: nn.Module) -> int:
    """Parameters an optimizer can change: every trainable entry minus masked-out weights."""
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            for parametrization in module.parametrizations["weight"]:
                if isinstance(parametrization, WeightMask):
                    count -= int((~parametrization.mask).sum())
    return count
