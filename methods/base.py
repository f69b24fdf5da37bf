"""The method interface: ``Method.allocate(model, density, *, context) -> Allocation``.

``allocate`` does everything every method shares (the density check, ``k = round(d * N)``, the
cost meter, leaving the model as it was, the contract check of the result) and calls the
method's own ``select(model, layers, budget, context)``, which returns one bool mask per
prunable weight. The :class:`Budget` says how many to keep (it *is* the int ``k``, carrying the
requested ``density`` and ``N``); the :class:`AllocationContext` says what else may be used.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from architectures import PrunableLayer, prunable_layers
from methods.allocation import Allocation
from methods.cost import CostMeter
from methods.errors import AllocationFailed, MethodContractError
from methods.options import with_range_check

Batch = tuple[torch.Tensor, torch.Tensor]
Masks = dict[str, torch.Tensor]


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
    of one example (SynFlow's all-ones input). ``batches_per_step`` is a property of the data set
    that the harness sets from it: how many batches an iterative data-driven method (FORCE,
    Iter-SNIP) averages per step, paper Table 3: 1 on CIFAR-10, 10 on CIFAR-100, 20 on Tiny
    ImageNet, 1 otherwise. ``dataset`` is the data set's name, for the record only: no built-in
    method reads it.
    """

    batches: Callable[[], Iterator[Batch]] | Iterable[Batch] | None = None
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    dataset: str | None = None
    passes: PassCounter = field(default_factory=PassCounter)
    batches_per_step: int = 1

    def __post_init__(self) -> None:
        try:
            per_step = operator.index(self.batches_per_step)
        except TypeError:
            per_step = 0
        if isinstance(self.batches_per_step, bool) or per_step < 1:
            raise ValueError(
                f"batches_per_step must be an integer >= 1, got {self.batches_per_step!r}"
            )
        self.batches_per_step = per_step

    def iter_batches(self) -> Iterator[Batch]:
        """A fresh iterator over this context's batches."""
        if self.batches is None:
            raise ValueError("this method needs data but the AllocationContext has no batches")
        source = self.batches() if callable(self.batches) else self.batches
        return iter(source)


def check_density(density: float) -> float:
    """``density`` as a float in (0, 1], or a ValueError naming the bad value."""
    try:
        value = float(density)
    except (TypeError, ValueError):
        raise ValueError(f"density {density!r} is not a number") from None
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ValueError(f"density {density!r} is outside (0, 1]")
    return value


def target_count(density: float, total: int) -> int:
    """``k = round(density * N)`` (Python's round, half to even), the count every method keeps."""
    return round(check_density(density) * total)


class Budget(int):
    """What ``select`` must keep: the int ``k``, carrying the requested ``density`` and ``total`` N.

    A subclass of ``int`` rather than a plain record, deliberately: a plugin written against the
    first contract, ``select(self, model, layers, k, context)``, receives a Budget and keeps
    using it as ``k`` unchanged (``global_topk(scores, k)``, ``k - 1``, ``range(k)``, JSON),
    while methods that need more read ``budget.density``, the ``d`` the run asked for (iterative
    schedules use it, s.1 rule 3: ``k / N`` can move an intermediate ``k_t`` by one), and
    ``budget.total``. Immutable; equality and hashing are those of ``k``; ``str`` is ``k``'s.
    A method called directly with a plain int turns it into a Budget with :func:`as_budget`.
    """

    density: float
    total: int

    def __new__(cls, k: int, density: float, total: int) -> Budget:
        if isinstance(k, bool) or int(k) != k:
            raise TypeError(f"k must be an integer, got {k!r}")
        self = super().__new__(cls, int(k))
        if not 0 <= int(k) <= total:
            raise ValueError(f"k = {int(k)} is outside [0, {total}]")
        if not 0.0 <= float(density) <= 1.0:
            raise ValueError(f"density {density!r} is outside [0, 1]")
        object.__setattr__(self, "density", float(density))
        object.__setattr__(self, "total", int(total))
        return self

    @property
    def k(self) -> int:
        """The count as a plain int."""
        return int(self)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Budget is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("a Budget is immutable")

    def __getnewargs__(self) -> tuple[int, float, int]:  # type: ignore[override]
        return int(self), self.density, self.total

    def __repr__(self) -> str:
        return f"Budget(k={int(self)}, density={self.density!r}, total={self.total})"

    def __str__(self) -> str:
        return str(int(self))


def as_budget(k: int, total: int) -> Budget:
    """``k`` itself if it is a Budget for ``total`` weights, else ``Budget(k, k / N, N)``.

    The density of a plain int is ``k / N``: what a method called directly, not through
    ``allocate``, can know of the requested density.
    """
    if isinstance(k, Budget):
        if k.total != total:
            raise ValueError(f"the budget is for {k.total} weights, the layers hold {total}")
        return k
    return Budget(k, k / total if total else 0.0, total)


class Method:
    """Base class of every pruning method; subclasses implement :meth:`select`.

    Options are the constructor's keyword arguments (typed, with defaults; numeric ones declare
    a ``methods.options.Range``, checked at construction); :meth:`options` returns them, so a run
    can record exactly what was used. ``lr_overrides`` maps an optimizer name to the base
    learning rate this method's networks train with instead of the preset's (DCTpS under SGD).
    ``stackable`` says whether the allocated network is masked, DCTpS or dense (the forms that
    stacked training expresses); a method that transforms the network otherwise sets it False.
    """

    name: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False
    description: ClassVar[str] = ""
    origin: ClassVar[str] = ""
    lr_overrides: ClassVar[Mapping[str, float]] = MappingProxyType({})
    stackable: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "checks_ranges", False):
            cls.__init__ = with_range_check(init)  # type: ignore[method-assign]

    def options(self) -> dict[str, Any]:
        """The constructor options this instance was built with (defaults included)."""
        params = inspect.signature(type(self).__init__).parameters
        return {p: getattr(self, p) for p in params if p != "self" and hasattr(self, p)}

    def learning_rate(self, optimizer: str, base_lr: float) -> float:
        """The base learning rate for training with ``optimizer`` (``"sgd"``, ``"adam"``):
        the method's own from :attr:`lr_overrides`, else the preset's ``base_lr``."""
        return float(self.lr_overrides.get(optimizer.lower(), base_lr))

    def allocate(
        self, model: nn.Module, density: float, *, context: AllocationContext | None = None
    ) -> Allocation:
        """Choose exactly ``round(density * N)`` prunable weights of ``model`` to keep.

        The model is left exactly as it was (weights, buffers, every submodule's train/eval
        flag); the cost of the call (seconds, peak bytes, forward/backward passes) is measured
        and returned with it. A method that cannot keep ``k`` raises :class:`AllocationFailed`
        (a result); one whose result breaks the contract raises :class:`MethodContractError`.
        """
        density = check_density(density)
        context = context if context is not None else AllocationContext()
        if self.needs_data and context.batches is None:
            raise ValueError(
                f"method {self.name!r} needs data: pass an AllocationContext with batches"
            )
        layers = prunable_layers(model)
        total = sum(layer.numel for layer in layers)
        budget = Budget(target_count(density, total), density, total)
        if budget == 0:
            raise AllocationFailed(
                f"density {density} keeps round({density} * {total}) = 0 weights"
            )
        context.passes = PassCounter()
        flags = [(module, module.training) for module in model.modules()]
        try:
            with CostMeter(context.device) as meter:
                masks, info = self.select(model, layers, budget, context)
        finally:
            for module, training in flags:
                module.training = training
        return Allocation(
            method=self.name,
            density=density,
            masks=self._checked_masks(masks, layers, budget),
            cost=meter.result(context.passes.forward, context.passes.backward),
            info=info,
            transform=self.transform(),
        )

    def _checked_masks(self, masks: Masks, layers: list[PrunableLayer], k: int) -> Masks:
        """``masks`` as CPU bool tensors, or :class:`MethodContractError` naming what is wrong:
        masks not matching the prunable layers' names and shapes, or a count other than ``k``."""
        names = [layer.name for layer in layers]
        missing = [name for name in names if name not in masks]
        unknown = [name for name in masks if name not in set(names)]
        if missing or unknown:
            raise MethodContractError(
                f"method {self.name!r} returned masks that do not match the prunable layers "
                f"(missing: {missing}, unknown: {unknown})"
            )
        for layer in layers:
            shape = tuple(masks[layer.name].shape)
            if shape != tuple(layer.weight.shape):
                raise MethodContractError(
                    f"method {self.name!r} returned a mask of shape {shape} for {layer.name} "
                    f"(weight shape {tuple(layer.weight.shape)})"
                )
        masks = {name: mask.detach().to("cpu", torch.bool) for name, mask in masks.items()}
        counts = {name: int(mask.sum()) for name, mask in masks.items()}
        if sum(counts.values()) != k:
            per_layer = ", ".join(f"{name} {count}" for name, count in counts.items())
            raise MethodContractError(
                f"method {self.name!r} kept {sum(counts.values())} weights instead of "
                f"k = {int(k)} (per layer: {per_layer})"
            )
        return masks

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[Masks, dict[str, Any]]:
        """Return ``({name: bool mask}, info)`` keeping exactly ``budget`` (= ``k``) weights.

        ``budget`` may also be a plain int when a caller (a test, a wrapper) calls ``select``
        directly; :func:`as_budget` gives the :class:`Budget` then.
        """
        raise NotImplementedError

    def transform(self) -> Callable[[nn.Module, Allocation], nn.Module] | None:
        """A layer transform applied instead of plain masking (DCTpS); None for sparse methods."""
        return None
