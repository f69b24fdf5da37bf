"""A reusable conformance check for pruning methods, in-tree or plugins.

A plugin author runs::

    from methods.testing import check_method
    report = check_method("mymethod")            # or an instance: check_method(MyMethod())
    print(report)

or parametrises pytest over :func:`methods.available` as ``tests/test_conformance.py`` does.
:func:`check_method` raises :class:`ConformanceError` naming the first broken rule:

- exactly ``k = round(d * N)`` weights on every model and density that does not fail with
  :class:`AllocationFailed` (a failure is a legitimate result, e.g. Iter-SNIP's zero saliency,
  but it must be deterministic, and at least one allocation must succeed); a wrong count is
  the :class:`~methods.MethodContractError` ``allocate`` raises, reported here;
- ``select(model, layers, budget, context)`` also accepts a plain int ``k`` for ``budget`` (a
  :class:`~methods.Budget` is an int; the density is then ``k / N``) and keeps ``k``;
- masks keyed by the prunable parameters' names in layer order, CPU ``bool`` tensors of the
  weights' shapes;
- determinism: the same seed gives identical masks (and the same failure);
- the model is left unchanged: parameters, buffers, dtypes, ``requires_grad`` flags and the
  train/eval flag (checked from both modes);
- it runs on the CPU and records its cost;
- ``needs_data`` is honoured: a data-driven method without batches raises a clear
  ``ValueError``; a data-free one never asks the context for batches and works with
  ``context=None`` (or says which other input it needs, e.g. SynFlow's ``input_shape``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import architectures
from methods.allocation import Allocation
from methods.base import AllocationContext, Method, target_count
from methods.errors import AllocationFailed, MethodContractError
from methods.registry import get

DEFAULT_MODELS = ("mlp", "small_cnn")
DEFAULT_DENSITIES = (0.05, 0.3)
INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10


class ConformanceError(AssertionError):
    """A method broke one of the rules of the method interface."""


@dataclass
class ConformanceReport:
    """What :func:`check_method` ran: allocations that kept exactly ``k``, and failures."""

    method: str
    passed: list[str] = field(default_factory=list)
    failed_allocations: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.method}: {len(self.passed)} allocations conform"]
        lines += [f"  ok   {item}" for item in self.passed]
        lines += [f"  fail {item} (AllocationFailed, deterministic)"
                  for item in self.failed_allocations]
        return "\n".join(lines)


def synthetic_context(
    seed: int = 0,
    *,
    input_shape: tuple[int, int, int] = INPUT_SHAPE,
    num_classes: int = NUM_CLASSES,
    batch_size: int = 128,
    dataset: str | None = None,
    batches_per_step: int = 1,
) -> AllocationContext:
    """A context with an endless stream of random batches, all drawn from ``seed``.

    Batches of 128 like the references' loaders: with much smaller ones the target-logit
    objective leaves whole classifier rows without gradient and Iter-SNIP legitimately fails.
    ``batches_per_step`` is the data set's (Table 3), as the harness sets it.
    """
    data_generator = torch.Generator().manual_seed(10_007 + seed)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            x = torch.randn(batch_size, *input_shape, generator=data_generator)
            yield x, torch.randint(0, num_classes, (batch_size,), generator=data_generator)

    return AllocationContext(
        batches=batches,
        generator=torch.Generator().manual_seed(seed),
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        dataset=dataset,
        batches_per_step=batches_per_step,
    )


def _no_data_context(seed: int, input_shape: tuple[int, int, int]) -> AllocationContext:
    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise ConformanceError("a method with needs_data = False asked for batches")

    return AllocationContext(
        batches=batches,
        generator=torch.Generator().manual_seed(seed),
        input_shape=tuple(input_shape),
        num_classes=NUM_CLASSES,
    )


def _snapshot(model: nn.Module) -> dict[str, Any]:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "training": [m.training for m in model.modules()],
    }


def _check_unchanged(before: dict[str, Any], model: nn.Module, where: str) -> None:
    after = _snapshot(model)
    if list(before["state"]) != list(after["state"]):
        raise ConformanceError(f"{where}: allocate changed the model's parameters/buffers")
    for key, old in before["state"].items():
        new = after["state"][key]
        if old.dtype != new.dtype or old.device != new.device or not torch.equal(old, new):
            raise ConformanceError(f"{where}: allocate changed {key!r} of the model")
    if before["grad"] != after["grad"]:
        raise ConformanceError(f"{where}: allocate changed requires_grad flags of the model")
    if before["training"] != after["training"]:
        raise ConformanceError(f"{where}: allocate changed the model's train/eval flags")


def _check_masks(allocation: Allocation, model: nn.Module, k: int, where: str) -> None:
    layers = architectures.prunable_layers(model)
    names = [layer.name for layer in layers]
    if list(allocation.masks) != names:
        raise ConformanceError(
            f"{where}: masks are keyed {list(allocation.masks)}, expected {names} (layer order)"
        )
    for layer in layers:
        mask = allocation.masks[layer.name]
        if mask.dtype != torch.bool or mask.device.type != "cpu":
            raise ConformanceError(f"{where}: mask {layer.name!r} is {mask.dtype} on {mask.device}")
        if tuple(mask.shape) != tuple(layer.weight.shape):
            raise ConformanceError(
                f"{where}: mask {layer.name!r} has shape {tuple(mask.shape)}, weight "
                f"{tuple(layer.weight.shape)}"
            )
    if allocation.kept != k:
        raise ConformanceError(f"{where}: kept {allocation.kept} weights, expected k = {k}")
    if allocation.cost is None or allocation.cost.seconds < 0:
        raise ConformanceError(f"{where}: the allocation carries no measured cost")


def _allocate(
    method: Method, model: nn.Module, density: float, context: AllocationContext | None
) -> Allocation | AllocationFailed:
    try:
        return method.allocate(model, density, context=context)
    except AllocationFailed as failure:
        return failure
    except MethodContractError as error:
        raise ConformanceError(str(error)) from None


def check_method(
    method_or_name: Method | str,
    *,
    options: dict[str, Any] | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
    densities: Sequence[float] = DEFAULT_DENSITIES,
    input_shape: tuple[int, int, int] = INPUT_SHAPE,
    seed: int = 0,
    context_factory: Callable[[int], AllocationContext] | None = None,
) -> ConformanceReport:
    """Run every conformance rule on ``method_or_name`` (a registry name or an instance).

    ``models`` are architecture names built with 10 classes for ``input_shape``; densities
    should keep at least one weight on each. ``context_factory(seed)`` overrides the synthetic
    data context (it must be deterministic in ``seed``).
    """
    if isinstance(method_or_name, str):
        method = get(method_or_name, **(options or {}))
    else:
        if options:
            raise ValueError("pass options only with a method name")
        method = method_or_name
    make_context = context_factory or (lambda s: synthetic_context(s, input_shape=input_shape))
    report = ConformanceReport(method.name)
    for index, arch in enumerate(models):
        model = architectures.build(arch, NUM_CLASSES, input_shape=input_shape, seed=seed)
        total = architectures.count_prunable(model)
        for step, density in enumerate(densities):
            where = f"{method.name} on {arch} at density {density}"
            model.train((index + step) % 2 == 0)  # both modes, across the grid
            before = _snapshot(model)
            first = _allocate(method, model, density, make_context(seed))
            _check_unchanged(before, model, where)
            second = _allocate(method, model, density, make_context(seed))
            _check_unchanged(before, model, where)
            if isinstance(first, AllocationFailed) or isinstance(second, AllocationFailed):
                if not (
                    isinstance(first, AllocationFailed)
                    and isinstance(second, AllocationFailed)
                    and first.reason == second.reason
                ):
                    raise ConformanceError(f"{where}: the same seed failed differently: "
                                           f"{first!r} vs {second!r}")
                report.failed_allocations.append(f"{where}: {first.reason}")
                continue
            k = target_count(density, total)
            _check_masks(first, model, k, where)
            for name, mask in first.masks.items():
                if not torch.equal(mask, second.masks[name]):
                    raise ConformanceError(f"{where}: the same seed gave different masks")
            report.passed.append(f"{where}: kept {k} of {total}")
        _check_plain_int(method, model, densities, make_context(seed))
        _check_data_contract(method, model, densities[-1], input_shape, seed)
    if not report.passed:
        raise ConformanceError(f"{method.name}: no allocation succeeded\n{report}")
    return report


def _check_plain_int(
    method: Method, model: nn.Module, densities: Sequence[float], context: AllocationContext
) -> None:
    """``select`` called directly with a plain int ``k`` (as old plugins and tests do) keeps
    exactly ``k``, or fails with :class:`AllocationFailed`."""
    layers = architectures.prunable_layers(model)
    total = sum(layer.numel for layer in layers)
    k = int(target_count(densities[-1], total))
    where = f"{method.name}.select with a plain int k = {k}"
    before = _snapshot(model)
    try:
        masks, _ = method.select(model, layers, k, context)
    except AllocationFailed:
        return
    finally:
        for module, flag in zip(model.modules(), before["training"]):
            module.training = flag  # allocate restores the flags; a bare select may not
    _check_unchanged(before, model, where)
    kept = sum(int(mask.sum()) for mask in masks.values())
    if kept != k:
        raise ConformanceError(f"{where}: kept {kept} weights")


def _check_data_contract(
    method: Method,
    model: nn.Module,
    density: float,
    input_shape: tuple[int, int, int],
    seed: int,
) -> None:
    where = f"{method.name} needs_data={method.needs_data}"
    if method.needs_data:
        for context in (None, AllocationContext(input_shape=input_shape)):
            try:
                method.allocate(model, density, context=context)
            except ValueError:
                continue
            except AllocationFailed as failure:
                raise ConformanceError(
                    f"{where}: without batches it must raise ValueError, not {failure!r}"
                ) from None
            raise ConformanceError(f"{where}: allocate without batches did not raise")
        return
    _allocate(method, model, density, _no_data_context(seed, input_shape))
    try:
        _allocate(method, model, density, None)
    except ValueError as error:
        if "input_shape" not in str(error):
            raise ConformanceError(
                f"{where}: allocate with context=None raised {error!r}"
            ) from None
