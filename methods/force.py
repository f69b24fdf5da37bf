"""FORCE and Iter-SNIP (de Jorge et al., 2021): iterative pruning from gradient saliency.

Both follow ``naver/force`` ``iterative_pruning`` (methods-reference.md s.6): train mode,
float32, per step ``num_batches`` fresh batches and the mean of their per-batch gradients,
``T = 60`` exponential steps (paper Table 3), ``w0`` the dense initial weights. Both run the
shared loop of :mod:`methods.iterative`; they differ only in their candidates and failure rule:

- ``force`` (FO method 3): gradients at ``w0 * m_{t-1}``; score ``|w0 * g|`` for *every*
  weight, pruned ones included (they can come back); ``m_t`` = top ``k_t`` of all weights.
  A step with ``0 < P_t < k_t`` keeps every weight, as the reference's zero threshold does, and
  the next step starts from the dense weights ("restore", ``info["dense_restart_steps"]``).
- ``itersnip`` (FO method 1, the first-commit algorithm that DCTpS's code calls FORCE, defect
  10): the copy is pruned for good; score ``|w_t * g|`` among the weights kept so far. While no
  weight has been removed, a step with ``0 < P_t < k_t`` removes nothing and the schedule goes
  on ("skip", ``info["skipped_steps"]``: bias-free LeNet-5's dead ReLUs start pruning late);
  once one has, such a step raises "zero saliency" (the reference would end dense, D.1).

Either raises at any step with ``P_t = 0`` and at the last step with ``P_T < K``, never a dense
mask (defect 5). The pruning objective is recorded: ``objective="target_logit"`` is the
reference's ``nll_loss`` on raw logits, minus the mean target logit (defect 4, reproduces the
paper); ``"cross_entropy"`` uses the context's loss (cross-entropy by default).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from architectures import PrunableLayer
from methods.base import AllocationContext, Batch
from methods.batches import BatchLog, BatchStream, seeded_global_rng
from methods.iterative import IterativeMethod, StepScorer
from methods.options import Range
from methods.registry import register
from methods.schedules import Schedule
from methods.scoring import Objective, ScoringCopy

ObjectiveName = Literal["target_logit", "cross_entropy"]


def target_logit(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The reference's objective, ``F.nll_loss`` on raw logits: ``-(1/B) sum_i z[i, y_i]``."""
    return F.nll_loss(logits, targets)


class GradientSteps(StepScorer):
    """FORCE's and Iter-SNIP's score: per step, the mean over ``num_batches`` batches of the
    per-batch mean-objective gradient (FO's averaging), on a train-mode float32 copy."""

    def __init__(
        self,
        method: IterativeSaliency,
        model: nn.Module,
        layers: list[PrunableLayer],
        context: AllocationContext,
    ) -> None:
        self.method = method
        self.context = context
        self.num_batches = method.num_batches or context.batches_per_step
        self.objective: Objective = (
            target_logit if method.objective == "target_logit" else context.loss
        )
        self.log = BatchLog()
        self.stream = BatchStream(context, self.log)
        self.fixed = self.stream.take(self.num_batches) if method.fixed_batches else None
        self.scoring = ScoringCopy(model, layers, context.device)
        self.scoring.model.train()

    def batches(self) -> list[Batch]:
        return self.fixed if self.fixed is not None else self.stream.take(self.num_batches)

    def gradients(self) -> list[torch.Tensor]:
        batches = self.batches()
        self.scoring.zero_grad()
        self.scoring.accumulate(batches, self.objective, self.context.passes)
        grads = self.scoring.grads()
        if len(batches) > 1:
            with torch.no_grad():
                for g in grads:
                    g.div_(len(batches))
        return grads

    def session(self) -> AbstractContextManager[Any]:
        return seeded_global_rng(self.context)

    def info(self) -> dict[str, Any]:
        method = self.method
        return {
            "steps": method.steps,
            "schedule": method.schedule,
            "objective": method.objective,
            "num_batches": self.num_batches,
            "fixed_batches": method.fixed_batches,
            "mode": "train",
            "data": self.log.info(),
        }


class IterativeSaliency(IterativeMethod):
    """Shared options and data handling of FORCE and Iter-SNIP.

    ``num_batches=None`` means the data set's batches per step (``context.batches_per_step``,
    paper Table 3: 1 on CIFAR-10, 10 on CIFAR-100, 20 on Tiny ImageNet, 1 otherwise).
    ``fixed_batches=True`` draws one set of batches and reuses it at every step (the reference
    draws fresh batches per step, the default).
    """

    needs_data = True

    def __init__(
        self,
        steps: Annotated[int, Range(min=1)] = 60,
        schedule: Schedule = "exp",
        objective: ObjectiveName = "target_logit",
        num_batches: Annotated[int, Range(min=1)] | None = None,
        fixed_batches: bool = False,
    ) -> None:
        self.steps = steps
        self.schedule = schedule
        self.objective = objective
        self.num_batches = num_batches
        self.fixed_batches = fixed_batches

    def scorer(
        self, model: nn.Module, layers: list[PrunableLayer], context: AllocationContext
    ) -> StepScorer:
        return GradientSteps(self, model, layers, context)


@register("force")
class Force(IterativeSaliency):
    """FORCE (FO method 3): dense-restoring iterative SNIP; pruned weights may revive (s.6)."""

    description = "FORCE: iterative |w0 * g| over all weights, 60 exp steps, train mode"
    label = "FORCE"
    monotone = False
    shortfall = "restore"


@register("itersnip")
class IterSnip(IterativeSaliency):
    """Iter-SNIP (FO method 1): monotone iterative SNIP, the DCTpS code's "FORCE" (s.6)."""

    description = "Iter-SNIP: monotone iterative |w * g|, 60 exp steps, train mode"
    label = "Iter-SNIP"
    monotone = True
    shortfall = "skip"
