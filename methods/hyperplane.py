"""Hyperplane Projection (Li et al., 2018): train ``k = round(density * N)`` coordinates of a
random subspace through the dense initialisation, ``w = w0 + P theta`` (the paper's Figure 1
baseline; DCTpS is its cheap axis-aligned version).

Like DCTpS it is a layer transform applied by ``Allocation.apply``, so training, storage and
reports need no special case. The masks it returns satisfy the harness's count contract and
record how the ``k`` degrees of freedom are shared: in proportion to each layer's size (uniform),
positions drawn from the run's generator; the transform itself does not use positions, every
weight moves. ``w0`` and ``P`` are rebuilt from a seed drawn from the run's generator and stored
in ``info["seed"]``; they are never saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from architectures import PrunableLayer, count_prunable
from architectures.hyperplane import (
    HyperplaneNet,
    default_projection,
    make_projection,
    projection_bytes,
)
from methods.allocation import Allocation
from methods.base import AllocationContext, Budget
from methods.registry import register
from methods.sparse_random import DistributionMethod


@register("hyperplane")
class Hyperplane(DistributionMethod):
    """Random-subspace training: ``k`` trainable coordinates, the dense network at ``theta = 0``.

    ``projection``: Li et al.'s ``dense`` (Gaussian, unit-norm columns), ``sparse`` (very sparse
    random projection) or ``fastfood``; ``auto`` picks dense for small ``N * k``, then sparse,
    then fastfood (as Li et al. did by network size).
    """

    description = "Hyperplane Projection (Li et al. 2018): w = w0 + P theta, k coordinates trained"
    needs_data = False
    distribution = "uniform"
    stackable = False  # each run trains theta through its own projection: it trains alone

    def __init__(self, projection: Literal["auto", "dense", "sparse", "fastfood"] = "auto") -> None:
        self.projection = projection

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        masks, info = super().select(model, layers, budget, context)
        total = sum(layer.numel for layer in layers)
        kind = self.projection if self.projection != "auto" else default_projection(total, budget)
        seed = int(torch.randint(0, 2**62, (1,), generator=context.generator))
        probe = make_projection(kind, total, int(budget), torch.Generator().manual_seed(seed))
        return masks, {
            **info,
            "projection": kind,
            "k": int(budget),
            "seed": seed,
            "projection_bytes": projection_bytes(probe),
        }

    def transform(self) -> Callable[[nn.Module, Allocation], nn.Module]:
        """Wrap the model so that its prunable weights are ``w0 + P theta``."""

        def apply(model: nn.Module, allocation: Allocation) -> nn.Module:
            total = count_prunable(model)
            projection = make_projection(
                allocation.info["projection"],
                total,
                allocation.info["k"],
                torch.Generator().manual_seed(allocation.info["seed"]),
            )
            dtype = next(model.parameters()).dtype
            return HyperplaneNet(model, projection.to(dtype), allocation.info["k"])

        return apply
