"""SynFlow (Tanaka et al., 2020): iterative synaptic flow, no data.

Follows Synaptic-Flow (methods-reference.md s.5) in float64: an all-ones input of the data set's
shape, the copy in eval mode with every floating entry of its state (weights, biases, BatchNorm
affine parameters and running statistics) replaced by its absolute value, ``R = sum`` of the
outputs, score ``|w * dR/dw|``, 100 exponential steps, each keeping the top ``k_t`` among the
weights kept so far.

The reference linearises the model in place and restores the signs afterwards; here the signs
are never touched (the absolute values live in the scoring copy). Differences from the
reference, all deliberate: float64 (defect 7: float32 overflows on ResNet50 and MobileNetV2);
exact counts (defect 6); when ``0 < P_t < k_t`` at an intermediate step the kept set is filled
with zero-score survivors by flat index instead of pruning every zero score
(``info["zero_score_fill_steps"]``); ``P_t = 0``, or ``P_T < K`` at the last step, raises
:class:`AllocationFailed` naming the step. The loop is the shared one of
:mod:`methods.iterative`; SynFlow supplies only its score (:class:`OnesInput`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from torch import nn

from architectures import PrunableLayer
from methods.base import AllocationContext, PassCounter
from methods.iterative import IterativeMethod, StepScorer
from methods.options import Range
from methods.registry import register
from methods.schedules import Schedule
from methods.scoring import ScoringCopy

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def synflow_linearised_copy(
    model: nn.Module,
    layers: list[PrunableLayer],
    device: torch.device | str,
    dtype: torch.dtype = torch.float64,
) -> ScoringCopy:
    """The scoring copy SynFlow works on: ``dtype``, absolute values everywhere, eval mode."""
    scoring = ScoringCopy(model, layers, device, dtype=dtype, absolute=True)
    scoring.model.eval()
    return scoring


def synflow_gradients(
    scoring: ScoringCopy, ones: torch.Tensor, passes: PassCounter
) -> list[torch.Tensor]:
    """``dR/dw`` for every prunable weight, ``R = sum(model(ones))``."""
    scoring.zero_grad()
    scoring.model(ones).sum().backward()
    passes.forward += 1
    passes.backward += 1
    return scoring.grads()


def synflow_scores(
    model: nn.Module,
    layers: list[PrunableLayer],
    input_shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """One-shot SynFlow scores ``|w * dR/dw|`` of an unmasked model (for tests and analysis)."""
    scoring = synflow_linearised_copy(model, layers, device, dtype)
    ones = torch.ones((1, *input_shape), dtype=scoring.dtype, device=scoring.device)
    grads = synflow_gradients(scoring, ones, PassCounter())
    with torch.no_grad():
        return {
            name: (w * g).abs()
            for name, w, g in zip(scoring.names, scoring.weights, grads, strict=True)
        }


class OnesInput(StepScorer):
    """SynFlow's score: ``dR/dw`` with ``R = sum(model(ones))`` on the linearised copy."""

    def __init__(
        self,
        method: SynFlow,
        model: nn.Module,
        layers: list[PrunableLayer],
        context: AllocationContext,
    ) -> None:
        if context.input_shape is None:
            raise ValueError(
                "synflow needs the input_shape (C, H, W) of one example in its AllocationContext"
            )
        self.method = method
        self.context = context
        self.scoring = synflow_linearised_copy(model, layers, context.device, DTYPES[method.dtype])
        self.ones = torch.ones(
            (1, *context.input_shape), dtype=self.scoring.dtype, device=self.scoring.device
        )

    def gradients(self) -> list[torch.Tensor]:
        return synflow_gradients(self.scoring, self.ones, self.context.passes)

    def info(self) -> dict[str, Any]:
        return {
            "steps": self.method.steps,
            "schedule": self.method.schedule,
            "dtype": self.method.dtype,
            "mode": "eval",
            "input": list(self.ones.shape),
        }


@register("synflow")
class SynFlow(IterativeMethod):
    """SynFlow, ``steps`` iterations (Table 3: 100, exponential), scored in ``dtype``.

    Needs ``context.input_shape`` (the ``(C, H, W)`` of one example) for its all-ones input.
    Monotone; a step with ``0 < P_t < k_t`` fills up with zero-score survivors by flat index.
    """

    description = "SynFlow: iterative |w * dR/dw| on an all-ones input, float64, 100 exp steps"
    needs_data = False
    label = "SynFlow"
    monotone = True
    shortfall = "fill"

    def __init__(
        self,
        steps: Annotated[int, Range(min=1)] = 100,
        schedule: Schedule = "exp",
        dtype: Literal["float64", "float32"] = "float64",
    ) -> None:
        self.steps = steps
        self.schedule = schedule
        self.dtype = dtype

    def scorer(
        self, model: nn.Module, layers: list[PrunableLayer], context: AllocationContext
    ) -> StepScorer:
        return OnesInput(self, model, layers, context)
