"""The scoring copy every saliency method works on, and the check of its scores.

Every score-based method (SNIP, GraSP, SynFlow, FORCE, Iter-SNIP) works on *one* deep copy of
the model, made once, on the context's device, in the dtype it scores in (methods-reference.md
s.1 rule 6: the model given to ``allocate`` is never touched). Iterative methods mask that copy
in place between steps (no per-step copy of the model). Gradients are the ones ``backward``
stores, used in place as scores and dropped before selection, so a step holds at most the copy,
its gradients and the selection's buffers. :func:`check_scores` applies s.1 rule 4: non-finite
scores fail, and it counts the positive ones (``P``) for each method's failure rule.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from architectures import PrunableLayer, prunable_layers
from methods.base import Batch, PassCounter
from methods.errors import AllocationFailed

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ScoringCopy:
    """One deep copy of ``model`` on ``device``: the only dense copy a saliency method makes.

    ``dtype`` casts every floating parameter and buffer (SynFlow's float64); ``absolute`` replaces
    every floating entry by its absolute value (SynFlow's linearisation, s.5). The copy is built
    tensor by tensor straight on the device and in the target dtype (``deepcopy`` with a
    pre-filled memo), so no second full copy exists even transiently, and the original is never
    written to. Only the prunable weights (:attr:`weights`, layer order) require gradients.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[PrunableLayer],
        device: torch.device | str,
        *,
        dtype: torch.dtype | None = None,
        absolute: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.names = [layer.name for layer in layers]

        def converted(tensor: torch.Tensor) -> torch.Tensor:
            target = dtype if (dtype is not None and tensor.is_floating_point()) else tensor.dtype
            out = tensor.detach().to(device=self.device, dtype=target, copy=True)
            if absolute and out.is_floating_point():
                out.abs_()
            return out

        prunable = {id(layer.weight) for layer in layers}
        memo: dict[int, Any] = {}
        with torch.no_grad():
            for tensor in model.parameters():
                grad = id(tensor) in prunable
                memo[id(tensor)] = nn.Parameter(converted(tensor), requires_grad=grad)
            for tensor in model.buffers():
                memo[id(tensor)] = converted(tensor)
            self.model = copy.deepcopy(model, memo)
        self.model.to(self.device)  # anything registered outside parameters()/buffers()
        copied = prunable_layers(self.model)
        if [layer.name for layer in copied] != self.names:
            raise RuntimeError("the scoring copy's prunable layers differ from the model's")
        self.weights: list[torch.Tensor] = [layer.weight for layer in copied]
        self.dtype = self.weights[0].dtype

    def zero_grad(self) -> None:
        """Drop the weights' gradients (the next backward stores fresh ones without a copy)."""
        for weight in self.weights:
            weight.grad = None

    def grads(self) -> list[torch.Tensor]:
        """The accumulated gradient of every prunable weight (zeros where none flowed)."""
        return [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]

    def accumulate(
        self, batches: Sequence[Batch], objective: Objective, passes: PassCounter
    ) -> None:
        """Add ``d objective(model(x), y) / dw`` of every batch to the weights' ``.grad``."""
        for x, y in batches:
            x = x.to(self.device, self.dtype if x.is_floating_point() else x.dtype)
            loss = objective(self.model(x), y.to(self.device))
            loss.backward()
            passes.forward += 1
            passes.backward += 1

    def as_masks(self, keep: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{name: CPU bool mask}`` from per-layer keep tensors."""
        return {name: m.to("cpu", torch.bool) for name, m in zip(self.names, keep, strict=True)}


def check_scores(scores: Sequence[torch.Tensor], step: str) -> int:
    """Raise on non-finite scores (naming ``step``); return ``P``, the count of scores > 0.

    One float64 sum per part decides finiteness (a NaN or an infinity makes it non-finite); only
    a non-finite sum, which huge finite scores could also cause, is checked element by element.
    """
    for part in scores:
        if not math.isfinite(float(part.sum(dtype=torch.float64))) and not bool(
            torch.isfinite(part).all()
        ):
            raise AllocationFailed(f"{step}: non-finite saliency scores")
    return sum(int(torch.count_nonzero(part > 0)) for part in scores)
