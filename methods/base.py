"""The method interface: ``Method.allocate(model, density, *, context) -> Allocation``."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from architectures import PrunableLayer, prunable_layers
from methods.allocation import Allocation
from methods.cost import CostMeter
from methods.errors import AllocationFailed

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class PassCounter:
    """Forward and backward passes a method spent, counted by the scoring helpers."""

    forward: int = 0
    backward: int = 0


@dataclass
class AllocationContext:
    """What an allocation may use beyond the model: data, loss, device and the run's generator.

    ``batches`` is a callable returning an iterator of ``(x, y)`` batches drawn from the run's
    seed (data-driven methods call it once per scoring step); ``input_shape`` is the ``(C, H, W)``
    of one example (SynFlow's all-ones input); ``dataset`` lets a method pick per-dataset defaults.
    """

    batches: Callable[[], Iterator[Batch]] | Iterable[Batch] | None = None
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    dataset: str | None = None
    passes: PassCounter = field(default_factory=PassCounter)

    def iter_batches(self) -> Iterator[Batch]:
        """A fresh iterator over this context's batches."""
        if self.batches is None:
            raise ValueError("this method needs data but the AllocationContext has no batches")
        source = self.batches() if callable(self.batches) else self.batches
        return iter(source)


def check_density(density: float) -> float:
    """``density`` as a float in (0, 1], or a ValueError naming the bad value."""
    value = float(density)
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ValueError(f"density {density!r} is outside (0, 1]")
    return value


def target_count(density: float, total: int) -> int:
    """``k = round(density * N)`` (Python's round, half to even), the count every method keeps."""
    return round(check_density(density) * total)


class Method:
    """Base class of every pruning method; subclasses implement :meth:`select`.

    Options are the constructor's keyword arguments (typed, with defaults); :meth:`options`
    returns them, so a run can record exactly what was used.
    """

    name: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False
    description: ClassVar[str] = ""
    origin: ClassVar[str] = ""

    def options(self) -> dict[str, Any]:
        """The constructor options this instance was built with (defaults included)."""
        params = inspect.signature(type(self).__init__).parameters
        return {p: getattr(self, p) for p in params if p != "self" and hasattr(self, p)}

    def allocate(
        self, model: nn.Module, density: float, *, context: AllocationContext | None = None
    ) -> Allocation:
        """Choose exactly ``round(density * N)`` prunable weights of ``model`` to keep.

        The model is left exactly as it was (weights, buffers, train/eval flag); the cost of the
        call (seconds, peak bytes, forward/backward passes) is measured and returned with it.
        """
        density = check_density(density)
        context = context if context is not None else AllocationContext()
        if self.needs_data and context.batches is None:
            raise ValueError(
                f"method {self.name!r} needs data: pass an AllocationContext with batches"
            )
        layers = prunable_layers(model)
        total = sum(layer.numel for layer in layers)
        k = target_count(density, total)
        if k == 0:
            raise AllocationFailed(
                f"density {density} keeps round({density} * {total}) = 0 weights"
            )
        context.passes = PassCounter()
        was_training = model.training
        with CostMeter(context.device) as meter:
            masks, info = self.select(model, layers, k, context)
        model.train(was_training)
        masks = {name: mask.detach().to("cpu", torch.bool) for name, mask in masks.items()}
        kept = sum(int(m.sum()) for m in masks.values())
        if kept != k:
            raise AssertionError(f"method {self.name!r} kept {kept} weights instead of {k}")
        return Allocation(
            method=self.name,
            density=density,
            masks=masks,
            cost=meter.result(context.passes.forward, context.passes.backward),
            info=info,
            transform=self.transform(),
        )

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], k: int, context: AllocationContext
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Return ``({name: bool mask}, info)`` keeping exactly ``k`` weights in total."""
        raise NotImplementedError

    def transform(self) -> Callable[[nn.Module, Allocation], nn.Module] | None:
        """A layer transform applied instead of plain masking (DCTpS); None for sparse methods."""
        return None
