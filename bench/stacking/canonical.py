"""One form for every allocated network, so that the runs of a grid can be stacked.

A stack needs its models to have the same parameters, buffers and shapes. The methods leave
networks of three kinds: masked (``WeightMask`` parametrizations), DCTpS (layers holding
``alpha``, the support values and their indices) and dense. Each prunable weight becomes, in
the plain network the architecture builds,

    W_eff = alpha * D + W * mask

with ``W`` dense and zero off the support for DCTpS (its ``S``), ``mask`` the support (all
ones for dense), and ``alpha * D`` the DCT offset, present only when the stack holds a DCTpS
run (``alpha = 0``, ``D = 0`` for the others, which adds an exact zero). Element-wise
optimisers then update each entry exactly as the run's own network would: a masked or off-
support entry gets a zero gradient, and off-support ``W`` of DCTpS starts at zero and stays
there under weight decay. :func:`write_back` puts the trained values back into the run's own
network, so everything after training (the alphas, the checkpoint) sees the usual model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

import architectures
from architectures.dctps import DCTpSLayer
from methods.allocation import WeightMask


class Unstackable(Exception):
    """A network this form cannot express (Hyperplane Projection, frozen parameters, ...)."""


class StackedWeight(nn.Module):
    """The parametrization ``W -> alpha * D + W * mask`` (``alpha * D`` only with an offset)."""

    def __init__(self, mask: torch.Tensor, offset: torch.Tensor | None, alpha: float) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool))
        if offset is None:
            self.alpha = None
        else:
            self.register_buffer("D", offset.detach().clone())
            self.alpha = nn.Parameter(torch.tensor(float(alpha), dtype=offset.dtype))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.alpha is None:
            return weight * self.mask
        return self.alpha * self.D + weight * self.mask


def _layer_state(module: nn.Module, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(W, mask, kind) of one prunable layer of an allocated network."""
    if isinstance(module, DCTpSLayer):
        support = torch.zeros(module.total, dtype=torch.bool, device=like.device)
        support[module.indices.long()] = True
        return module.sparse_weight().detach(), support.view(module.weight_shape), "dctps"
    if parametrize.is_parametrized(module, "weight"):
        chain = module.parametrizations["weight"]
        if len(chain) != 1 or not isinstance(chain[0], WeightMask):
            raise Unstackable(f"weight parametrized by {[type(p).__name__ for p in chain]}")
        return chain.original.detach(), chain[0].mask, "masked"
    weight = getattr(module, "weight", None)
    if not isinstance(weight, nn.Parameter) or weight.shape != like.shape:
        raise Unstackable(f"no weight of shape {tuple(like.shape)} in {type(module).__name__}")
    return weight.detach(), torch.ones_like(weight, dtype=torch.bool), "dense"


def canonical(model: nn.Module, plain: nn.Module, with_offset: bool) -> nn.Module:
    """``plain`` (a network the architecture built) carrying ``model``'s allocated state.

    ``with_offset``: give every prunable weight an ``alpha * D`` term (a stack with DCTpS).
    Raises :class:`Unstackable` when ``model`` has another structure or frozen parameters.
    """
    if any(not p.requires_grad for p in model.parameters()):
        raise Unstackable("the network has frozen parameters")
    modules = dict(model.named_modules())
    state = model.state_dict()
    prunable = architectures.prunable_layers(plain)
    covered: set[str] = set()
    for layer in prunable:
        module = modules.get(layer.module_name)
        if module is None:
            raise Unstackable(f"the network has no layer {layer.module_name!r}")
        weight, mask, kind = _layer_state(module, layer.weight)
        offset, alpha = None, 0.0
        if with_offset:
            offset = torch.zeros_like(weight)
            if kind == "dctps":
                # The layer's own D buffer (built in float64, cast once), else as it builds it.
                own = module.D if hasattr(module, "D") else module.offset()
                offset, alpha = own.detach(), float(module.alpha.detach())
        with torch.no_grad():
            layer.module.weight.copy_(weight)
        parametrize.register_parametrization(
            layer.module, "weight", StackedWeight(mask, offset, alpha), unsafe=True
        )
        covered.add(layer.module_name)
    rest = {
        name: value
        for name, value in plain.state_dict().items()
        if ".parametrizations." not in name and not name.endswith(".weight.original")
    }
    missing = [name for name in rest if name not in state]
    if missing:
        raise Unstackable(f"the network has no {missing[0]!r}")
    plain.load_state_dict({name: state[name] for name in rest}, strict=False)
    return plain


def write_back(plain: nn.Module, model: nn.Module) -> None:
    """Copy the trained values of the canonical ``plain`` into the run's own ``model``."""
    modules = dict(model.named_modules())
    trained = plain.state_dict()
    with torch.no_grad():
        for layer in architectures.prunable_layers(plain):
            module = modules[layer.module_name]
            chain = layer.module.parametrizations["weight"]
            weight = chain.original.detach()
            if isinstance(module, DCTpSLayer):
                module.values.copy_(weight.reshape(-1)[module.indices.long()])
                module.alpha.copy_(chain[0].alpha.detach())
            elif parametrize.is_parametrized(module, "weight"):
                module.parametrizations["weight"].original.copy_(weight)
            else:
                module.weight.copy_(weight)
        own = model.state_dict()
        rest = {
            name: value
            for name, value in trained.items()
            if ".parametrizations." not in name and name in own
        }
        model.load_state_dict(rest, strict=False)
