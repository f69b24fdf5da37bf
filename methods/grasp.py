"""GraSP (Wang et al., 2020): keep the weights whose removal least reduces the gradient flow.

Follows Synaptic-Flow's implementation (methods-reference.md s.4) with the paper's sign: logits
divided by the temperature 200 in both passes, ``g = sum_b dL_b/dw`` (detached), then
``Hg = sum_b H_b g`` by double backward through ``<g, dL_b/dw>``; score ``w * Hg`` (signed) and
the **largest** are kept (defect 12 was the inverted sign). Same prune set and eval mode as SNIP;
the real weights are scored (the original's Xavier re-initialised copy is defect 8) and exactly
``k`` are kept (defect 9).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import torch
from torch import nn

from architectures import PrunableLayer
from methods.base import AllocationContext, Batch, Budget, Method, PassCounter
from methods.batches import BatchLog, prune_set
from methods.errors import AllocationFailed
from methods.options import Range
from methods.registry import register
from methods.scoring import Objective, ScoringCopy, check_scores
from methods.selection import select_top


def grasp_scores(
    scoring: ScoringCopy,
    batches: Sequence[Batch],
    loss: Objective,
    passes: PassCounter,
    temperature: float = 200.0,
) -> list[torch.Tensor]:
    """``w * Hg`` per prunable weight (signed); ``H`` is the Hessian of the summed batch losses."""
    model, weights = scoring.model, scoring.weights

    def batch_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.to(scoring.device, scoring.dtype if x.is_floating_point() else x.dtype)
        passes.forward += 1
        return loss(model(x) / temperature, y.to(scoring.device))

    g: list[torch.Tensor] | None = None  # the first batch's gradients become the sum
    for x, y in batches:
        parts = torch.autograd.grad(batch_loss(x, y), weights, allow_unused=True)
        parts = [torch.zeros_like(w) if p is None else p for w, p in zip(weights, parts)]
        if g is None:
            g = parts
        else:
            for total, part in zip(g, parts):
                total.add_(part)
        passes.backward += 1
    assert g is not None, "GraSP needs at least one batch"
    scoring.zero_grad()
    for x, y in batches:
        grads = torch.autograd.grad(
            batch_loss(x, y), weights, create_graph=True, allow_unused=True
        )
        z = sum((gb * gw).sum() for gb, gw in zip(grads, g) if gb is not None)
        if isinstance(z, torch.Tensor) and z.requires_grad:
            z.backward()  # accumulates H_b g into each weight's .grad
        passes.backward += 2
    with torch.no_grad():
        return [hg.mul_(w) for w, hg in zip(weights, scoring.grads())]


@register("grasp")
class Grasp(Method):
    """GraSP as Synaptic-Flow computes it, keeping the largest ``w * Hg`` (s.4).

    Fails when fewer than ``k`` scores are non-zero (a zero score carries no ranking).
    """

    description = "GraSP: keep the largest w * Hg (temperature 200), eval mode, global top-k"
    needs_data = True

    def __init__(
        self,
        examples: Annotated[int, Range(min=1)] | None = None,
        batch_size: Annotated[int, Range(min=1)] = 256,
        temperature: Annotated[float, Range(min=0, min_exclusive=True)] = 200.0,
    ) -> None:
        self.examples = examples
        self.batch_size = batch_size
        self.temperature = temperature

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        k = int(budget)
        log = BatchLog()
        batches = prune_set(context, self.examples, self.batch_size, log)
        scoring = ScoringCopy(model, layers, context.device)
        scoring.model.eval()
        scores = grasp_scores(scoring, batches, context.loss, context.passes, self.temperature)
        check_scores(scores, "GraSP")
        nonzero = sum(int(torch.count_nonzero(s)) for s in scores)
        if nonzero < k:
            raise AllocationFailed(
                f"GraSP: only {nonzero} scores are non-zero, fewer than k = {k}"
            )
        keep = scoring.as_masks(select_top(scores, k))
        info = {"mode": "eval", "keep": "largest w*Hg", "nonzero_scores": nonzero,
                "data": log.info()}
        return keep, info
