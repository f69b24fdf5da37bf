"""Sanity controls from the PaI literature, usable with any method (Frankle et al., 2021).

``get(name, shuffle="layer")`` or ``get(name, reinit=True)`` (CLI ``snip:shuffle=layer``,
``snip:reinit=true``) wraps the method in :class:`Controlled`:

- ``shuffle="layer"``: keep the method's count in every layer, redraw the positions uniformly
  inside the layer (``randperm(n_l)[:k_l]``, layers in order) from the run's generator, after the
  method has chosen. Which layers get how much is the method's; where inside a layer is random.
- ``reinit=True``: keep the method's mask exactly, but when the allocation is applied every
  prunable weight is first re-drawn from the harness's initialisation distribution (Kaiming
  normal, fan-in, ReLU gain: s.9, ``architectures.registry.kaiming_init_``) with a seed drawn
  from the run's generator and stored in ``info["controls"]["reinit_seed"]``; then the mask is
  applied as usual. Biases, BatchNorm and the mask are untouched: the method's choice of *which*
  weights survives is kept, the values it saw are not. Methods with their own layer transform
  (DCTpS) are rejected: there is no kept weight to re-initialise.

Both controls leave ``allocate``'s contract intact: exactly ``k`` weights, the model untouched,
determinism from the seed. The wrapped method receives the same :class:`~methods.Budget` (so
its schedule sees the requested density) and keeps its own training learning rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from architectures import PrunableLayer, prunable_layers
from methods.allocation import Allocation
from methods.base import AllocationContext, Budget, Method
from methods.selection import random_layer_masks

Shuffle = Literal["none", "layer"]
CONTROL_TYPES: dict[str, Any] = {"shuffle": Shuffle, "reinit": bool}


def reinit_weights_(model: nn.Module, seed: int) -> None:
    """Re-draw every prunable weight with Kaiming normal (fan-in, ReLU) from ``seed``.

    Draws on the CPU, layer by layer in registration order, so the values equal
    ``kaiming_init_(model, torch.Generator().manual_seed(seed))`` on any device.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in prunable_layers(model):
            fresh = torch.empty(layer.weight.shape, dtype=layer.weight.dtype)
            nn.init.kaiming_normal_(fresh, mode="fan_in", nonlinearity="relu", generator=generator)
            layer.weight.copy_(fresh)


def apply_reinit(model: nn.Module, allocation: Allocation) -> nn.Module:
    """The ``reinit`` transform: re-draw the prunable weights, then mask them as usual."""
    reinit_weights_(model, int(allocation.info["controls"]["reinit_seed"]))
    return dataclasses.replace(allocation, transform=None).apply(model)


class Controlled(Method):
    """``method`` with the ``shuffle`` and/or ``reinit`` controls applied to its result."""

    def __init__(self, method: Method, shuffle: Shuffle = "none", reinit: bool = False) -> None:
        if shuffle not in ("none", "layer"):
            raise ValueError(f"shuffle must be 'none' or 'layer', got {shuffle!r}")
        if reinit and method.transform() is not None:
            raise ValueError(
                f"reinit=true is meaningless for {method.name!r}: it replaces the layers"
            )
        self.method = method
        self.shuffle = shuffle
        self.reinit = reinit
        self.name = method.name  # type: ignore[misc]
        self.needs_data = method.needs_data  # type: ignore[misc]
        self.description = method.description  # type: ignore[misc]
        self.origin = method.origin  # type: ignore[misc]

    def options(self) -> dict[str, Any]:
        return {**self.method.options(), "shuffle": self.shuffle, "reinit": self.reinit}

    def learning_rate(self, optimizer: str, base_lr: float) -> float:
        return self.method.learning_rate(optimizer, base_lr)

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        masks, info = self.method.select(model, layers, budget, context)
        masks = {name: m.detach().to("cpu", torch.bool) for name, m in masks.items()}
        controls: dict[str, Any] = {"shuffle": self.shuffle, "reinit": self.reinit}
        if self.shuffle == "layer":
            counts = {name: int(m.sum()) for name, m in masks.items()}
            masks = random_layer_masks(
                {name: m.shape for name, m in masks.items()}, counts, context.generator
            )
        if self.reinit:
            controls["reinit_seed"] = int(
                torch.randint(0, 2**62, (1,), generator=context.generator)
            )
        return masks, {**info, "controls": controls}

    def transform(self) -> Callable[[nn.Module, Allocation], nn.Module] | None:
        return apply_reinit if self.reinit else self.method.transform()


def with_controls(method: Method, shuffle: Shuffle = "none", reinit: bool = False) -> Method:
    """``method`` itself when no control is on, else wrapped in :class:`Controlled`."""
    if shuffle == "none" and not reinit:
        return method
    return Controlled(method, shuffle=shuffle, reinit=reinit)
