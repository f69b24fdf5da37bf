"""DCT plus Sparse (DCTpS) layers: ``W = alpha * D + S`` trained through ``alpha`` and k values.

``D`` is the fixed DCT offset of :func:`architectures.dct.dctps_offset` (never trained, rebuilt
from the shape, never in a ``state_dict``), ``alpha`` one trainable scalar, and ``S`` is zero
except on a fixed support of ``k`` entries whose values are the only trainable weights. The
support is stored as flat indices into ``weight.reshape(-1)`` (PyTorch's layout), so optimizer
state and checkpoints grow with ``k``, not with the layer, and off-support entries of ``W`` stay
exactly ``alpha * D`` under any optimizer (methods-reference.md s.7; design.md "DCT plus Sparse").

Three implementations with equal outputs, chosen by ``impl``:

- ``"dense"`` (default): ``alpha * D`` with the values scattered in, then ONE ``F.conv2d`` /
  ``F.linear``; the cost of a plain layer plus O(m*n) elementwise work.
- ``"factored"``: for ``groups=1`` convs the patch DCT as an exact 1x1 channel transform plus a
  depthwise conv (:func:`factored_offset`), and ``S`` applied from its k nonzeros as one CSR
  matrix per kernel offset (:class:`SparseConv2dFunction`), so the sparse cost grows with k.
  Linear layers, grouped convs and the ``"chw"`` order fall back to ``"dense"``.
- ``"reference"``: the paper's layout, a conv with the frozen ``D`` plus a conv with the dense
  (mostly zero) ``S``; the oracle the other two are tested against.

The layers deliberately do not subclass ``nn.Conv2d``/``nn.Linear``: a DCTpS network is not
pruned again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from architectures.dct import DCTOrder, dctps_offset
from architectures.dctps_autograd import ComposeWeight, DenseConv2dFunction
from architectures.dctps_sparse import (
    _PLAN_KEYS,
    ConvGeometry,
    SparseConv2dFunction,
    _numeric_padding,
    _pair,
    factored_offset,
    sparse_plan,
)
from architectures.prunable import prunable_layers

Impl = Literal["dense", "factored", "reference"]
IMPLS: tuple[str, ...] = ("dense", "factored", "reference")


class DCTpSLayer(nn.Module):
    """What DCTpS Linear and Conv2d share: ``alpha``, the support values and indices, the bias."""

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor | None,
        mask: Tensor,
        *,
        impl: Impl,
        alpha: float,
        order: DCTOrder,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"unknown DCTpS impl {impl!r} (valid: {', '.join(IMPLS)})")
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}, weight has {tuple(weight.shape)}"
            )
        self.weight_shape = torch.Size(weight.shape)
        self.impl = impl
        self.order = order
        self.groups = groups
        factory: dict[str, Any] = {"dtype": weight.dtype, "device": weight.device}
        flat = torch.nonzero(mask.detach().reshape(-1).to("cpu", torch.bool)).reshape(-1)
        index_dtype = torch.int32 if self.total < 2**31 else torch.int64
        self.alpha = nn.Parameter(torch.tensor(float(alpha), **factory))
        self.values = nn.Parameter(torch.zeros(flat.numel(), **factory))
        self.register_buffer("indices", flat.to(weight.device, index_dtype))
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(bias.detach().clone())
        if not self.uses_factored:
            self.register_buffer("D", self.offset(), persistent=False)
        self._rebuild()

    @property
    def uses_factored(self) -> bool:
        """True when the factored forward applies (overridden by convs; Linear falls back)."""
        return False

    @property
    def support_size(self) -> int:
        """k: the number of trainable entries of ``S``."""
        return self.values.numel()

    @property
    def total(self) -> int:
        """Weights of the layer this one replaces (``m * n``)."""
        return self.weight_shape.numel()

    def offset(self) -> Tensor:
        """``D``, built from the shape in the layer's dtype and device (float64, then cast)."""
        return dctps_offset(
            self.weight_shape, self.groups, self.order, self.alpha.dtype, self.alpha.device
        )

    def sparse_weight(self) -> Tensor:
        """``S`` as a dense tensor of the weight's shape (zero off the support)."""
        flat = self.values.new_zeros(self.total).index_add(0, self.indices, self.values)
        return flat.view(self.weight_shape)

    def _combined(self, offset: Tensor) -> Tensor:
        """``alpha * offset + S``: the values scattered onto the scaled offset as one tensor."""
        return ComposeWeight.apply(offset, self.alpha, self.values, self.indices)

    def effective_weight(self) -> Tensor:
        """``W = alpha * D + S`` as one dense tensor (differentiable in alpha and the values)."""
        return self._combined(self.D if hasattr(self, "D") else self.offset())

    def _rebuild(self) -> None:
        """Recompute state derived from ``indices`` (checks it; convs build their grouping)."""
        if self.indices.is_meta or self.indices.numel() == 0:
            return
        flat = self.indices.detach().to("cpu", torch.int64)
        if int(flat.min()) < 0 or int(flat.max()) >= self.total:
            raise ValueError(f"support indices fall outside [0, {self.total})")
        if torch.unique(flat).numel() != flat.numel():
            raise ValueError("support indices repeat")

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Accept a support of any size k (resize values/indices first), then rebuild from it."""
        values, indices = state_dict.get(prefix + "values"), state_dict.get(prefix + "indices")
        if values is not None and indices is not None and values.shape != self.values.shape:
            self.values = nn.Parameter(self.values.new_empty(values.shape))
            self.indices = self.indices.new_empty(indices.shape)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self._rebuild()

    def extra_repr(self) -> str:
        return (
            f"weight_shape={tuple(self.weight_shape)}, k={self.support_size}, impl={self.impl!r}, "
            f"order={self.order!r}, bias={self.bias is not None}"
        )


class DCTpSLinear(DCTpSLayer):
    """DCTpS version of an ``nn.Linear``: ``y = x (alpha D + S)^T + b``.

    ``impl="factored"`` falls back to ``"dense"``: on CPU one GEMM with the materialised weight
    beats an FFT (see benchmarks/dctps.py).
    """

    def __init__(
        self,
        linear: nn.Linear,
        mask: Tensor,
        *,
        impl: Impl = "dense",
        alpha: float = 1.0,
        order: DCTOrder = "hwc",
    ) -> None:
        super().__init__(linear.weight, linear.bias, mask, impl=impl, alpha=alpha, order=order)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: Tensor) -> Tensor:
        if self.impl == "reference":
            return self.alpha * F.linear(x, self.D) + F.linear(x, self.sparse_weight(), self.bias)
        return F.linear(x, self._combined(self.D), self.bias)


class DCTpSConv2d(DCTpSLayer):
    """DCTpS version of an ``nn.Conv2d`` (stride, padding, dilation, groups, padding_mode, bias).

    ``impl="factored"`` applies to ``groups=1`` convs of any kernel size (the CIFAR nets' 3x3 and
    1x1): the DCT part through :func:`factored_offset` and S through
    :class:`SparseConv2dFunction`. For a 1x1 conv the DCT part is the 1x1 conv ``D`` itself, so
    factored costs more than dense there. Grouped and depthwise convs (their D is the
    reference's small fixed matrix) and the ``"chw"`` order (the factorisation is derived for the
    reference's channel-fastest patches) fall back to ``"dense"``.
    """

    def __init__(
        self,
        conv: nn.Conv2d,
        mask: Tensor,
        *,
        impl: Impl = "dense",
        alpha: float = 1.0,
        order: DCTOrder = "hwc",
    ) -> None:
        self.stride = _pair(conv.stride)
        self.padding = _numeric_padding(conv)
        self.dilation = _pair(conv.dilation)
        self.padding_mode = conv.padding_mode
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = _pair(conv.kernel_size)
        super().__init__(
            conv.weight, conv.bias, mask, impl=impl, alpha=alpha, order=order, groups=conv.groups
        )

    @property
    def uses_factored(self) -> bool:
        """Factored applies to ``groups=1`` convs in the reference ("hwc") order."""
        return self.impl == "factored" and self.groups == 1 and self.order == "hwc"

    def _rebuild(self) -> None:
        """Build the factored transform and group the support by kernel offset (factored only)."""
        super()._rebuild()
        if not self.uses_factored or self.indices.is_meta:
            return
        mix, spatial = factored_offset(self.weight_shape, self.alpha.dtype, self.alpha.device)
        self.register_buffer("mix", mix, persistent=False)
        self.register_buffer("spatial", spatial, persistent=False)
        self.offset_groups, plan = sparse_plan(self.indices, self.weight_shape)
        for name, tensor in plan.items():
            self.register_buffer(f"plan_{name}", tensor.to(self.indices.device), persistent=False)

    def _pre_pad(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Apply a non-zero ``padding_mode`` by hand; returns the input and the conv's padding."""
        if self.padding_mode == "zeros":
            return x, self.padding
        ph, pw = self.padding
        return F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode), (0, 0)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        x, padding = self._pre_pad(x)
        return F.conv2d(x, weight, bias, self.stride, padding, self.dilation, self.groups)

    def forward(self, x: Tensor) -> Tensor:
        if self.uses_factored:
            return self._forward_factored(x)
        if self.impl == "reference":
            return self.alpha * self._conv(x, self.D, None) + self._conv(
                x, self.sparse_weight(), self.bias
            )
        x, padding = self._pre_pad(x)
        conv_args = (self.stride, padding, self.dilation, self.groups)
        return DenseConv2dFunction.apply(
            x, self.alpha, self.values, self.bias, self.D, self.indices, conv_args
        )

    def _forward_factored(self, x: Tensor) -> Tensor:
        x, padding = self._pre_pad(x)
        if self.spatial is None:
            y = F.conv2d(x, self.alpha * self.mix, self.bias, self.stride, padding, self.dilation)
        else:
            out = self.out_channels
            bias = None if self.bias is None else torch.cat([self.bias, self.bias.new_zeros(out)])
            mixed = F.conv2d(x, self.mix)
            both = F.conv2d(
                mixed, self.alpha * self.spatial, bias, self.stride, padding, self.dilation, 2 * out
            )
            y = both[:, :out] + both[:, out:]
        if not self.offset_groups:
            return y
        plan = {name: getattr(self, f"plan_{name}") for name in _PLAN_KEYS}
        geometry = ConvGeometry(self.stride, padding, self.dilation)
        return SparseConv2dFunction.apply(y, x, self.values, plan, self.offset_groups, geometry)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, groups={self.groups}"
        )


def to_dctps(
    model: nn.Module,
    masks: Mapping[str, Tensor],
    impl: Impl = "dense",
    alphas: Mapping[str, float] | None = None,
    order: DCTOrder = "hwc",
) -> nn.Module:
    """Replace every prunable layer named ``<module>.weight`` in ``masks`` by its DCTpS version.

    In place: the mask becomes the support of ``S`` (values 0), the bias is copied, and ``alpha``
    is ``alphas[name]`` (default 1). Layers absent from ``masks`` stay as they are. Returns the
    model.
    """
    layers = {layer.name: layer for layer in prunable_layers(model)}
    unknown = sorted(set(masks) - set(layers))
    if unknown:
        raise ValueError(f"masks name weights that are not prunable layers of the model: {unknown}")
    alphas = alphas or {}
    for name, mask in masks.items():
        layer = layers[name]
        if not layer.module_name:
            raise ValueError("cannot swap the model itself: wrap the layer in a container")
        kind = DCTpSConv2d if isinstance(layer.module, nn.Conv2d) else DCTpSLinear
        new = kind(layer.module, mask, impl=impl, alpha=alphas.get(name, 1.0), order=order)
        parent_name, _, child = layer.module_name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, new)
    return model


def dctps_layers(model: nn.Module) -> dict[str, DCTpSLayer]:
    """Every DCTpS layer of ``model`` by module name, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, DCTpSLayer)}


def dctps_alphas(model: nn.Module) -> dict[str, float]:
    """``alpha`` of every DCTpS layer of ``model``, keyed ``"<module name>.weight"``.

    Found by type (:class:`DCTpSLayer`), not by an ``alpha`` attribute, so another module's
    scalar of that name is never mistaken for one; the keys are those of the masks and of the
    stored per-layer allocation. A model without DCTpS layers gives ``{}``.
    """
    return {
        f"{name}.weight": float(layer.alpha.detach()) for name, layer in dctps_layers(model).items()
    }
