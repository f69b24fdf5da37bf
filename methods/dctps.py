"""DCTpS (DCT plus Sparse, Price & Tanner 2021): a random support for S, then a layer swap.

The allocation is a data-free random one (EPL by default, as in the paper's section 5; EPF or
uniform as options) with exact per-layer counts and positions drawn from the run's generator.
:meth:`DCTpS.transform` makes ``Allocation.apply`` replace every prunable layer by its DCTpS
version (``W = alpha * D + S``, S trainable on the mask only), with Fixup's alphas for a Fixup
ResNet (methods-reference.md s.7). DCTpS networks trained with SGD use the base learning rate
0.03 (paper Table 4's note): the method declares it in ``lr_overrides``, and the harness asks
``method.learning_rate(optimizer, preset_lr)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from architectures import PrunableLayer, prunable_layers
from architectures.dctps import Impl, to_dctps
from architectures.dctps_fixup import FixupAlpha, fixup_alphas, is_fixup_resnet
from methods.allocation import Allocation
from methods.base import AllocationContext, Budget
from methods.registry import register
from methods.sparse_random import DistributionMethod


@register("dctps")
class DCTpS(DistributionMethod):
    """DCT plus Sparse: random support (``allocation``), layers swapped to DCTpS on ``apply``.

    ``impl`` picks the layer implementation (all give the same outputs); ``fixup_alpha`` how the
    first conv of each Fixup block is scaled (``"reference"`` reproduces the paper's code).
    """

    description = "DCTpS: fixed DCT offset plus a random sparse trainable support (EPL default)"
    needs_data = False
    lr_overrides: ClassVar[Mapping[str, float]] = MappingProxyType({"sgd": 0.03})  # Table 4

    def __init__(
        self,
        allocation: Literal["epl", "epf", "uniform"] = "epl",
        impl: Literal["dense", "factored", "reference"] = "dense",
        fixup_alpha: Literal["reference", "norm"] = "reference",
    ) -> None:
        self.allocation = allocation
        self.impl: Impl = impl
        self.fixup_alpha: FixupAlpha = fixup_alpha
        self.distribution = allocation

    def select(
        self, model: nn.Module, layers: list[PrunableLayer], budget: Budget,
        context: AllocationContext,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        masks, info = super().select(model, layers, budget, context)
        return masks, {**info, "impl": self.impl, "fixup_alpha": self.fixup_alpha}

    def transform(self) -> Callable[[nn.Module, Allocation], nn.Module]:
        """Swap the model's prunable layers for DCTpS layers on the allocation's supports."""
        impl, mode = self.impl, self.fixup_alpha

        def apply(model: nn.Module, allocation: Allocation) -> nn.Module:
            names = {layer.name for layer in prunable_layers(model)}
            missing = sorted(names - set(allocation.masks))
            if missing:
                raise ValueError(f"allocation does not match the model: missing masks {missing}")
            alphas = fixup_alphas(model, mode) if is_fixup_resnet(model) else None
            return to_dctps(model, allocation.masks, impl=impl, alphas=alphas)

        return apply
