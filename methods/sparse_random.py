"""Data-free random allocations: Sparse (uniform), Sparse (EPL) and EPF.

Per-layer counts come from :mod:`methods.distributions`; positions are drawn uniformly without
replacement inside each layer from the run's generator (never Bernoulli masks).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from architectures import PrunableLayer
from methods.base import AllocationContext, Budget, Method
from methods.distributions import layer_counts
from methods.registry import register
from methods.selection import random_layer_masks, random_positions


class DistributionMethod(Method):
    """A random allocation whose per-layer counts follow one distribution."""

    distribution: str = "uniform"

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        counts = layer_counts(layers, int(budget), self.distribution)
        shapes = {layer.name: layer.weight.shape for layer in layers}
        masks = random_layer_masks(
            shapes, dict(zip(shapes, counts, strict=True)), context.generator
        )
        return masks, {"distribution": self.distribution}


@register("random")
class RandomUniform(DistributionMethod):
    """Sparse (uniform): the same density in every layer, positions uniform within each layer."""

    description = "Sparse (uniform): equal density per layer, random positions"
    distribution = "uniform"


@register("epl")
class EqualPerLayer(DistributionMethod):
    """Sparse (EPL): an equal number of weights per layer (capped proportional), random places."""

    description = "Sparse (EPL): equal count per layer, random positions (Price & Tanner 2021)"
    distribution = "epl"


@register("epf")
class EqualPerFilter(DistributionMethod):
    """EPF: an equal number per output filter (appendix A.2); positions per layer or per filter.

    ``within="layer"`` (default) draws the layer's count uniformly over the whole layer, as the
    reference code does; ``within="filter"`` gives every filter its share, as the paper words it.
    """

    description = "EPF: equal count per output filter, random positions"
    distribution = "epf"

    def __init__(self, within: Literal["layer", "filter"] = "layer") -> None:
        self.within = within

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        if self.within == "layer":
            masks, info = super().select(model, layers, budget, context)
            return masks, {**info, "within": "layer"}
        counts = layer_counts(layers, int(budget), self.distribution)
        masks = {}
        for layer, count in zip(layers, counts, strict=True):
            rows = layer.out_features
            row_size = layer.numel // rows
            per_row = torch.full((rows,), count // rows, dtype=torch.long)
            per_row[torch.randperm(rows, generator=context.generator)[: count % rows]] += 1
            mask = torch.zeros(rows, row_size, dtype=torch.bool)
            for row in range(rows):
                mask[row, random_positions(row_size, int(per_row[row]), context.generator)] = True
            masks[layer.name] = mask.reshape(layer.weight.shape)
        return masks, {"distribution": self.distribution, "within": "filter"}


@register("dense")
class Dense(Method):
    """The unpruned baseline: keeps every weight (only meaningful at density 1)."""

    description = "Dense baseline (density 1)"

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        total = sum(layer.numel for layer in layers)
        if budget != total:
            raise ValueError(
                f"method 'dense' keeps every weight: density must be 1, got k={budget} of {total}"
            )
        return {
            layer.name: torch.ones(layer.weight.shape, dtype=torch.bool) for layer in layers
        }, {}
