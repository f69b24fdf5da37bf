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
  depthwise conv (:func:`factored_offset`), and ``S`` applied from its k nonzeros
  (:class:`SparseConv2dFunction`), so the sparse cost grows with k. Linear and grouped convs fall
  back to ``"dense"``.
- ``"reference"``: the paper's layout, a conv with the frozen ``D`` plus a conv with the dense
  (mostly zero) ``S``; the oracle the other two are tested against.

The layers deliberately do not subclass ``nn.Conv2d``/``nn.Linear``: a DCTpS network is not
pruned again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from architectures.dct import DCTOrder, dct_scale, dctps_offset
from architectures.prunable import prunable_layers

Impl = Literal["dense", "factored", "reference"]
IMPLS: tuple[str, ...] = ("dense", "factored", "reference")
FixupAlpha = Literal["reference", "norm"]


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
        flat = (self.alpha * offset).reshape(-1).index_add(0, self.indices, self.values)
        return flat.view(self.weight_shape)

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


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _numeric_padding(conv: nn.Conv2d) -> tuple[int, int]:
    """The conv's padding as ``(ph, pw)``, resolving ``"valid"`` and symmetric ``"same"``."""
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        totals = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        if any(t % 2 for t in totals):
            raise NotImplementedError("DCTpS needs symmetric padding ('same' is asymmetric here)")
        return (totals[0] // 2, totals[1] // 2)
    return _pair(conv.padding)  # type: ignore[arg-type]


def factored_offset(
    weight_shape: torch.Size | tuple[int, ...],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor | None]:
    """The reference-order patch DCT of a ``groups=1`` conv as a 1x1 conv then a depthwise conv.

    With patch index ``p = (a*kw + b)*in + c`` and ``theta_o = pi*o/(2q)``, the argument of
    ``D[o, c, a, b] = s_o cos(theta_o (2p + 1))`` splits as ``A + B`` with ``A = theta_o (2c + 1)``
    (channel only) and ``B = 2 theta_o in (a*kw + b)`` (offset only), and
    ``cos(A + B) = cos A cos B - sin A sin B``. So ``D * x`` is a 1x1 conv ``in -> 2*out``
    (``cos A`` rows, then ``sin A`` rows) followed by a depthwise ``kh x kw`` conv on the ``2*out``
    channels (``s_o cos B`` and ``-s_o sin B``) whose two halves are summed:
    ``2*in*out + 2*out*kh*kw`` multiply-adds per pixel instead of ``in*out*kh*kw``.
    Returns ``(mix, spatial)``; for a 1x1 kernel ``B = 0`` and the DCT is the 1x1 conv ``D``
    itself: ``spatial`` is None and ``mix`` has ``out`` rows.
    """
    out, cin, kh, kw = (int(s) for s in weight_shape)
    q = max(out, cin * kh * kw)
    theta = math.pi * torch.arange(out, dtype=torch.float64, device=device) / (2 * q)
    scale = dct_scale(q, device=device)[:out]
    channel = theta[:, None] * (2 * torch.arange(cin, dtype=torch.float64, device=device) + 1)
    if kh == kw == 1:
        return (scale[:, None] * torch.cos(channel)).reshape(out, cin, 1, 1).to(dtype), None
    position = torch.arange(kh * kw, dtype=torch.float64, device=device).reshape(kh, kw)
    spatial_arg = 2 * cin * theta[:, None, None] * position
    mix = torch.cat([torch.cos(channel), torch.sin(channel)]).reshape(2 * out, cin, 1, 1)
    scale = scale[:, None, None]
    spatial = torch.cat([scale * torch.cos(spatial_arg), -scale * torch.sin(spatial_arg)])
    spatial = spatial.reshape(2 * out, 1, kh, kw)
    return mix.to(dtype), spatial.to(dtype)


def _window(
    x: Tensor,
    a: int,
    b: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_size: tuple[int, int],
) -> Tensor:
    """The strided view of padded input ``x`` that kernel offset ``(a, b)`` sees at every output."""
    top, left = a * dilation[0], b * dilation[1]
    bottom = top + stride[0] * (out_size[0] - 1) + 1
    right = left + stride[1] * (out_size[1] - 1) + 1
    return x[:, :, top : bottom : stride[0], left : right : stride[1]]


class SparseConv2dFunction(torch.autograd.Function):
    """Adds ``conv2d(x_pad, S)`` into ``base`` in place, computed from S's nonzeros only.

    The support is grouped by kernel offset: for each offset, gather the input channels its
    nonzeros read (a strided window of the padded input), scale by the values and ``index_add_``
    into the output channels; backward does the transpose the same way. Work and memory are
    O(k * batch * output pixels), independent of the layer's size.
    """

    @staticmethod
    def forward(
        ctx: Any,
        base: Tensor,
        x_pad: Tensor,
        values: Tensor,
        rows: Tensor,
        cols: Tensor,
        groups: list[tuple[int, int, int, int]],
        stride: tuple[int, int],
        dilation: tuple[int, int],
    ) -> Tensor:
        out_size = (base.shape[-2], base.shape[-1])
        for a, b, start, end in groups:
            window = _window(x_pad, a, b, stride, dilation, out_size)
            gathered = window.index_select(1, cols[start:end])
            base.index_add_(1, rows[start:end], gathered * values[start:end, None, None])
        ctx.mark_dirty(base)
        ctx.save_for_backward(x_pad, values, rows, cols)
        ctx.geometry = (groups, stride, dilation, out_size)
        return base

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x_pad, values, rows, cols = ctx.saved_tensors
        groups, stride, dilation, out_size = ctx.geometry
        need_x, need_values = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        grad_x = torch.zeros_like(x_pad) if need_x else None
        grad_values = torch.zeros_like(values) if need_values else None
        for a, b, start, end in groups:
            grad_rows = grad.index_select(1, rows[start:end])
            if grad_values is not None:
                window = _window(x_pad, a, b, stride, dilation, out_size)
                gathered = window.index_select(1, cols[start:end])
                grad_values[start:end] = torch.einsum("nkhw,nkhw->k", grad_rows, gathered)
            if grad_x is not None:
                _window(grad_x, a, b, stride, dilation, out_size).index_add_(
                    1, cols[start:end], grad_rows * values[start:end, None, None]
                )
        return grad, grad_x, grad_values, None, None, None, None, None


class DCTpSConv2d(DCTpSLayer):
    """DCTpS version of an ``nn.Conv2d`` (stride, padding, dilation, groups, padding_mode, bias).

    ``impl="factored"`` applies to ``groups=1`` convs of any kernel size (the CIFAR nets' 3x3 and
    1x1): the DCT part through :func:`factored_offset` and S through
    :class:`SparseConv2dFunction`. For a 1x1 conv the DCT part is the 1x1 conv ``D`` itself, so
    factored costs more than dense there. Grouped and depthwise convs fall back to ``"dense"``
    (their D is the reference's small fixed matrix).
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
        if not self.uses_factored:
            return
        mix, spatial = factored_offset(self.weight_shape, self.alpha.dtype, self.alpha.device)
        self.register_buffer("mix", mix, persistent=False)
        self.register_buffer("spatial", spatial, persistent=False)
        flat = self.indices.detach().to("cpu", torch.int64)
        kh, kw = self.kernel_size
        offset_id, rest = flat % (kh * kw), flat // (kh * kw)
        perm = torch.argsort(offset_id, stable=True)
        counts = torch.bincount(offset_id, minlength=kh * kw).tolist()
        ends = torch.tensor(counts).cumsum(0).tolist()
        self.offset_groups = [
            (i // kw, i % kw, end - count, end)
            for i, (count, end) in enumerate(zip(counts, ends))
            if count
        ]
        device = self.indices.device
        self.register_buffer("perm", perm.to(device), persistent=False)
        self.register_buffer("rows", (rest // self.in_channels)[perm].to(device), persistent=False)
        self.register_buffer("cols", (rest % self.in_channels)[perm].to(device), persistent=False)

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
        return self._conv(x, self._combined(self.D), self.bias)

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
        ph, pw = padding
        x_pad = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
        return SparseConv2dFunction.apply(
            y,
            x_pad,
            self.values[self.perm],
            self.rows,
            self.cols,
            self.offset_groups,
            self.stride,
            self.dilation,
        )

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


def is_fixup_resnet(model: nn.Module) -> bool:
    """A Fixup ResNet (architectures/fixup_resnet.py): ``blocks()``, stem ``conv1``, ``fc``."""
    return all(hasattr(model, attr) for attr in ("blocks", "conv1", "fc")) and callable(
        model.blocks
    )


def fixup_alpha(
    weight_shape: torch.Size | tuple[int, ...], num_blocks: int, mode: FixupAlpha
) -> float:
    """``alpha`` of a Fixup block's first conv (DC ``DCTplusSparseFixupResNet``).

    ``nu = sqrt(2) sigma Gamma((p+1)/2) / Gamma(p/2)`` is the mean norm of a Gaussian filter of
    length ``p = in*kh*kw`` with Fixup's std ``sigma = sqrt(2/(kh*kw*out)) / sqrt(B)``; divided by
    the mean norm of D's filters it gives ``"norm"``; the reference takes its square root
    (``"reference"``, defect 11 of methods-reference.md s.8).
    """
    out, cin, kh, kw = (int(s) for s in weight_shape)
    p = cin * kh * kw
    sigma = math.sqrt(2.0 / (kh * kw * out)) / math.sqrt(num_blocks)
    nu = math.sqrt(2.0) * sigma * math.exp(math.lgamma((p + 1) / 2) - math.lgamma(p / 2))
    filters = dctps_offset(weight_shape, dtype=torch.float64).reshape(out, -1)
    mean_norm = float(filters.norm(dim=1).mean())
    ratio = nu / mean_norm
    if mode == "reference":
        return math.sqrt(ratio)
    if mode == "norm":
        return ratio
    raise ValueError(f"unknown fixup_alpha mode {mode!r} (valid: 'reference', 'norm')")


def fixup_alphas(model: nn.Module, mode: FixupAlpha = "reference") -> dict[str, float]:
    """``alpha`` for every prunable layer of a (dense) Fixup ResNet, keyed like the masks.

    Stem 1; classifier and every block's second conv 0 (Fixup zeroes them); every block's first
    conv :func:`fixup_alpha`; any other layer 1.
    """
    if not is_fixup_resnet(model):
        raise ValueError("fixup_alphas needs a Fixup ResNet (blocks(), conv1 and fc)")
    names = {id(module): name for name, module in model.named_modules()}
    alphas = {layer.name: 1.0 for layer in prunable_layers(model)}
    blocks = list(model.blocks())
    for block in blocks:
        prefix = names[id(block)]
        alphas[f"{prefix}.conv1.weight"] = fixup_alpha(block.conv1.weight.shape, len(blocks), mode)
        alphas[f"{prefix}.conv2.weight"] = 0.0
    alphas[f"{names[id(model.fc)]}.weight"] = 0.0
    return alphas
