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
with zero-score survivors by flat index instead of pruning every zero score; ``P_t = 0``, or
``P_T < K`` at the last step, raises :class:`AllocationFailed` naming the step.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from architectures import PrunableLayer
from methods.base import AllocationContext, PassCounter
from methods.errors import AllocationFailed
from methods.registry import register
from methods.scoring import (
    Schedule,
    ScheduledMethod,
    ScoringCopy,
    Survivors,
    check_scores,
    step_counts,
)

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


@register("synflow")
class SynFlow(ScheduledMethod):
    """SynFlow, ``steps`` iterations (Table 3: 100, exponential), scored in ``dtype``.

    Needs ``context.input_shape`` (the ``(C, H, W)`` of one example) for its all-ones input.
    """

    description = "SynFlow: iterative |w * dR/dw| on an all-ones input, float64, 100 exp steps"
    needs_data = False

    def __init__(
        self,
        steps: int = 100,
        schedule: Schedule = "exp",
        dtype: Literal["float64", "float32"] = "float64",
    ) -> None:
        self.steps = steps
        self.schedule = schedule
        self.dtype = dtype

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], k: int, context: AllocationContext
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        if context.input_shape is None:
            raise ValueError(
                "synflow needs the input_shape (C, H, W) of one example in its AllocationContext"
            )
        total = sum(layer.numel for layer in layers)
        counts = step_counts(self.density_for(k, total), self.steps, total, self.schedule)
        scoring = synflow_linearised_copy(model, layers, context.device, DTYPES[self.dtype])
        ones = torch.ones((1, *context.input_shape), dtype=scoring.dtype, device=scoring.device)
        survivors = Survivors(scoring.weights)
        filled: list[int] = []
        steps = len(counts)
        for step, k_t in enumerate(counts, start=1):
            grads = synflow_gradients(scoring, ones, context.passes)
            with torch.no_grad():
                scores = survivors.gather(scoring.weights, grads)
                scoring.zero_grad()
                del grads
                positive = check_scores(scores, f"SynFlow step {step}/{steps}")
                if positive == 0:
                    raise AllocationFailed(
                        f"SynFlow step {step}/{steps}: all {len(survivors)} candidate scores "
                        "are zero"
                    )
                if positive < k_t:
                    if step == steps:
                        raise AllocationFailed(
                            f"SynFlow step {step}/{steps}: only {positive} positive scores "
                            f"for k = {k_t}"
                        )
                    filled.append(step)
                removed = survivors.keep_top(scores, k_t)
                del scores
                for weight, index in zip(scoring.weights, removed):
                    weight.view(-1)[index] = 0
                del removed  # not held through the next forward/backward
        info = {
            "steps": steps,
            "schedule": self.schedule,
            "dtype": self.dtype,
            "mode": "eval",
            "input": [1, *context.input_shape],
            "zero_score_fill_steps": filled,
        }
        return scoring.as_masks(survivors.masks(scoring.weights)), info
