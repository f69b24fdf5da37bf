"""SNIP (Lee et al., 2019): connection sensitivity ``|w * dL/dw|`` at initialisation.

Follows the Synaptic-Flow implementation (methods-reference.md s.3): ``10 * num_classes``
training examples in batches of 256, cross-entropy, the scoring copy in **eval** mode, the
gradient summed over the batches' mean losses, a global exact top-k. Unlike the original port
(mil-ad/snip), the real weights are scored, never a Xavier re-initialisation of them
(defect 8), and ties never change the count (defects 5, 6).
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


def snip_scores(
    scoring: ScoringCopy, batches: Sequence[Batch], loss: Objective, passes: PassCounter
) -> list[torch.Tensor]:
    """``|w * G|`` per prunable weight, ``G = sum_b dL_b/dw`` (per-batch mean losses, summed).

    The scores are written over the copy's gradients (no extra buffer).
    """
    scoring.zero_grad()
    scoring.accumulate(batches, loss, passes)
    with torch.no_grad():
        return [g.mul_(w).abs_() for w, g in zip(scoring.weights, scoring.grads())]


@register("snip")
class Snip(Method):
    """SNIP as Synaptic-Flow computes it (s.3); fails when fewer than ``k`` scores are positive.

    ``examples=None`` uses ``10 * num_classes`` examples (the first batch if the context does
    not know the class count); ``batch_size`` regroups them as the reference does.
    """

    description = "SNIP: |w * dL/dw| on 10 x classes examples, eval mode, global top-k"
    needs_data = True

    def __init__(
        self,
        examples: Annotated[int, Range(min=1)] | None = None,
        batch_size: Annotated[int, Range(min=1)] = 256,
    ) -> None:
        self.examples = examples
        self.batch_size = batch_size

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        k = int(budget)
        log = BatchLog()
        batches = prune_set(context, self.examples, self.batch_size, log)
        scoring = ScoringCopy(model, layers, context.device)
        scoring.model.eval()
        scores = snip_scores(scoring, batches, context.loss, context.passes)
        positive = check_scores(scores, "SNIP")
        if positive < k:
            raise AllocationFailed(
                f"SNIP: only {positive} scores are positive, fewer than k = {k} (zero saliency)"
            )
        keep = scoring.as_masks(select_top(scores, k))
        info = {"mode": "eval", "positive_scores": positive, "data": log.info()}
        return keep, info
