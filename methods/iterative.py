"""The one iterative loop of FORCE, Iter-SNIP and SynFlow (methods-reference.md s.1, s.5, s.6).

For each step count ``k_t`` of the schedule (:func:`methods.schedules.step_counts` at the
requested density ``budget.density``) the loop takes the step's gradients from the method's
:class:`StepScorer`, turns them into saliencies ``|w * g|`` over the candidates, checks them
(:func:`methods.scoring.check_scores`: non-finite fails), applies the failure rule, selects the
top ``k_t`` and masks the scoring copy. A method declares only three things:

- its *score*: a :class:`StepScorer` (the scoring copy and one step's gradients);
- ``monotone``: True selects among the survivors of the previous step, which are zeroed in the
  copy for good (:class:`~methods.survivors.Survivors`: SynFlow, Iter-SNIP); False scores every
  weight at the dense initial weights ``w0`` and masks the copy to ``w0 * m_t`` (FORCE, whose
  pruned weights can come back: :class:`DenseRestoring`);
- ``shortfall``: what a step does when ``0 < P_t < k_t`` (fewer positive scores than it keeps)
  before the last step, recorded per step in the allocation's info:

  ========== ============================================================ =======================
  policy     the step                                                     info key
  ========== ============================================================ =======================
  "restore"  keeps every weight, as the reference's zero threshold does;   dense_restart_steps
             the next step starts from the dense weights (FORCE)
  "skip"     removes nothing while no weight has been removed yet (the     skipped_steps
             reference's zero threshold keeps all, so pruning starts
             later); once one has, it raises "zero saliency" (Iter-SNIP)
  "fill"     keeps the ``P_t`` positive candidates and fills up with       zero_score_fill_steps
             zero-score ones by flat index (SynFlow)
  ========== ============================================================ =======================

Whatever the policy, ``P_t = 0`` raises at any step and ``P_T < K`` raises at the last one
(never a dense or arbitrary mask: reference defect 5). Failure messages name the step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from architectures import PrunableLayer
from methods.base import AllocationContext, Budget, Masks, Method, as_budget
from methods.errors import AllocationFailed
from methods.schedules import Schedule, step_counts
from methods.scoring import ScoringCopy, check_scores
from methods.selection import select_top
from methods.survivors import Survivors

Shortfall = Literal["restore", "skip", "fill"]

INFO_KEYS: dict[str, str] = {
    "restore": "dense_restart_steps",
    "skip": "skipped_steps",
    "fill": "zero_score_fill_steps",
}

# (all scores zero, too few positive scores): each method's failure reasons, as stored.
MESSAGES: dict[str, tuple[str, str]] = {
    "restore": (
        "{where}: all {candidates} saliency scores are zero",
        "{where}: zero saliency, only {positive} positive scores for k = {k}",
    ),
    "skip": (
        "{where}: zero saliency, only {positive} of {candidates} candidate scores are positive "
        "for k = {k}",
    ) * 2,
    "fill": (
        "{where}: all {candidates} candidate scores are zero",
        "{where}: only {positive} positive scores for k = {k}",
    ),
}


class StepScorer:
    """One allocation's scoring state: the scoring copy and the gradients of each step.

    :meth:`gradients` returns ``dS/dw`` for every prunable weight of :attr:`scoring` (the loop
    turns them into ``|w * g|`` in place); :meth:`session` wraps the whole loop (FORCE and
    Iter-SNIP seed the global RNG there); :meth:`info` is recorded with the allocation.
    """

    scoring: ScoringCopy

    def gradients(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def session(self) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def info(self) -> dict[str, Any]:
        return {}


class DenseRestoring:
    """FORCE's candidates: every weight, scored at the dense ``w0``; the copy holds ``w0 * m_t``.

    ``w0`` is read from the original model's layers (never written), moved only if the copy
    lives on another device or dtype.
    """

    def __init__(self, layers: Sequence[PrunableLayer], scoring: ScoringCopy) -> None:
        self.weights = scoring.weights
        self.dense = [layer.weight.detach().to(scoring.device, scoring.dtype) for layer in layers]
        self.total = sum(w.numel() for w in self.dense)
        self.keep: list[torch.Tensor] | None = None  # None: every weight kept

    def __len__(self) -> int:
        return self.total

    @property
    def pruned(self) -> bool:
        return self.keep is not None

    def scores(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """``|w0 * g|`` for every weight, written over the gradients."""
        return [torch.mul(w0, g, out=g).abs_() for w0, g in zip(self.dense, grads)]

    def keep_top(self, scores: list[torch.Tensor], k: int) -> None:
        self.keep = select_top(scores, k)
        for w, w0, m in zip(self.weights, self.dense, self.keep):
            torch.mul(w0, m, out=w)

    def keep_all(self) -> None:
        """Back to the dense network (the reference's zero threshold keeps every weight)."""
        self.keep = None
        for w, w0 in zip(self.weights, self.dense):
            w.copy_(w0)

    def masks(self) -> list[torch.Tensor]:
        if self.keep is None:
            return [torch.ones(w.shape, dtype=torch.bool, device=w.device) for w in self.weights]
        return self.keep


class Monotone:
    """SynFlow's and Iter-SNIP's candidates: the survivors; removed weights are zeroed for good."""

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        self.weights = weights
        self.survivors = Survivors(weights)

    def __len__(self) -> int:
        return len(self.survivors)

    @property
    def pruned(self) -> bool:
        return self.survivors.pruned

    def scores(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """``|w * g|`` of the survivors, in flat-index order (:meth:`Survivors.gather`)."""
        return self.survivors.gather(self.weights, grads)

    def keep_top(self, scores: list[torch.Tensor], k: int) -> None:
        removed = self.survivors.keep_top(scores, k)
        for weight, index in zip(self.weights, removed):
            weight.view(-1)[index] = 0

    def keep_all(self) -> None:
        """Remove nothing (only possible while nothing has been removed: monotone)."""
        if self.survivors.pruned:
            raise RuntimeError("a monotone method cannot restore removed weights")

    def masks(self) -> list[torch.Tensor]:
        return self.survivors.masks(self.weights)


class IterativeMethod(Method):
    """A method run by the shared loop: subclasses give :meth:`scorer`, ``monotone``, ``shortfall``.

    ``label`` names the method in failure reasons (``"FORCE step 3/60: ..."``); ``steps`` and
    ``schedule`` are set by the subclass's constructor.
    """

    label: ClassVar[str] = ""
    monotone: ClassVar[bool] = True
    shortfall: ClassVar[Shortfall] = "fill"
    steps: int
    schedule: Schedule

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.shortfall not in INFO_KEYS:
            raise TypeError(f"{cls.__name__}.shortfall must be one of {sorted(INFO_KEYS)}")
        if cls.shortfall == "restore" and cls.monotone:
            raise TypeError(f"{cls.__name__}: shortfall 'restore' needs monotone = False")

    def scorer(
        self, model: nn.Module, layers: list[PrunableLayer], context: AllocationContext
    ) -> StepScorer:
        """The scoring copy and per-step gradients of this method, for one allocation."""
        raise NotImplementedError

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[Masks, dict[str, Any]]:
        """Run the schedule for ``budget`` (its requested density; ``k / N`` for a plain int)."""
        budget = as_budget(budget, sum(layer.numel for layer in layers))
        counts = step_counts(budget.density, self.steps, budget.total, self.schedule)
        scorer = self.scorer(model, layers, context)
        scoring = scorer.scoring
        weights = scoring.weights
        candidates = Monotone(weights) if self.monotone else DenseRestoring(layers, scoring)
        recorded: list[int] = []
        steps = len(counts)
        with scorer.session():
            for step, k_t in enumerate(counts, start=1):
                grads = scorer.gradients()
                with torch.no_grad():
                    scores = candidates.scores(grads)
                    del grads
                    scoring.zero_grad()
                    where = f"{self.label or self.name} step {step}/{steps}"
                    positive = check_scores(scores, where)
                    if positive < k_t:
                        self._shortfall(where, step == steps, positive, k_t, candidates)
                        recorded.append(step)
                    if positive >= k_t or self.shortfall == "fill":
                        candidates.keep_top(scores, k_t)
                    else:
                        candidates.keep_all()
                    del scores  # not held through the next forward/backward
        info = {**scorer.info(), INFO_KEYS[self.shortfall]: recorded}
        return scoring.as_masks(candidates.masks()), info

    def _shortfall(
        self, where: str, last: bool, positive: int, k: int, candidates: Monotone | DenseRestoring
    ) -> None:
        """Raise for ``P_t < k_t`` where the failure rule says so: ``P_t = 0``, the last step,
        or (policy "skip") a step after a weight has been removed."""
        if positive == 0 or last or (self.shortfall == "skip" and candidates.pruned):
            zero, short = MESSAGES[self.shortfall]
            text = zero if positive == 0 else short
            raise AllocationFailed(
                text.format(where=where, candidates=len(candidates), positive=positive, k=k)
            )
