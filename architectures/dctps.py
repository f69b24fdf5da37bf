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

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
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


def _compose(alpha: Tensor, values: Tensor, offset: Tensor, indices: Tensor) -> Tensor:
    """``alpha * offset`` with ``values`` added at the flat ``indices`` (a new tensor)."""
    weight = alpha * offset
    weight.view(-1).index_add_(0, indices, values)
    return weight


def _offset_grads(
    ctx: Any, grad_weight: Tensor, offset: Tensor, indices: Tensor
) -> tuple[Tensor | None, Tensor | None]:
    """``(dalpha, dvalues) = (<dW, D>, dW[indices])`` from a weight gradient, no temporaries."""
    flat = grad_weight.reshape(-1)
    grad_alpha = torch.dot(flat, offset.reshape(-1)) if ctx.needs_input_grad[1] else None
    grad_values = flat.index_select(0, indices) if ctx.needs_input_grad[2] else None
    return grad_alpha, grad_values


class ComposeWeight(torch.autograd.Function):
    """``W = alpha * D + S`` with S given by its k values, in one tensor of D's shape.

    Backward needs no temporary of the layer's size: ``dalpha = <dW, D>`` (one dot product) and
    ``dvalues = dW[indices]``; autograd's own ``alpha * D`` would allocate ``dW * D`` first.
    """

    @staticmethod
    def forward(ctx: Any, offset: Tensor, alpha: Tensor, values: Tensor, indices: Tensor) -> Tensor:
        ctx.save_for_backward(offset, indices)
        return _compose(alpha, values, offset, indices)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        offset, indices = ctx.saved_tensors
        return None, *_offset_grads(ctx, grad, offset, indices), None


class DenseConv2dFunction(torch.autograd.Function):
    """``conv2d(x, alpha * D + S)`` (impl ``"dense"``) whose backward never holds W and dW at once.

    W is composed in forward and again in backward (one pass over the layer) instead of being
    saved: ``dx`` is computed with it, it is freed, then ``dW`` gives ``dalpha = <dW, D>`` and
    ``dvalues = dW[indices]``. Peak memory is D plus one layer-sized buffer, as for a plain conv's
    weight plus its gradient, instead of D + W + dW.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        alpha: Tensor,
        values: Tensor,
        bias: Tensor | None,
        offset: Tensor,
        indices: Tensor,
        conv_args: tuple[tuple[int, int], tuple[int, int], tuple[int, int], int],
    ) -> Tensor:
        ctx.save_for_backward(x, alpha, values, offset, indices)
        ctx.conv_args = conv_args
        return F.conv2d(x, _compose(alpha, values, offset, indices), bias, *conv_args)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, alpha, values, offset, indices = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args

        def backward_of(weight: Tensor, mask: tuple[bool, bool, bool]) -> tuple[Tensor, ...]:
            # the real x and a real weight-shaped tensor: torch.nn.grad's expanded placeholders
            # would be materialised (a copy of the input or of the weight)
            return torch.ops.aten.convolution_backward(
                grad, x, weight, None, stride, padding, dilation, False, [0], groups, mask
            )

        grad_x = grad_alpha = grad_values = grad_bias = None
        if ctx.needs_input_grad[0]:
            weight = _compose(alpha, values, offset, indices)
            grad_x = backward_of(weight, (True, False, False))[0]
            del weight
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_weight = backward_of(offset, (False, True, False))[1]
            grad_alpha, grad_values = _offset_grads(ctx, grad_weight, offset, indices)
        if ctx.needs_input_grad[3]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_alpha, grad_values, grad_bias, None, None, None


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


@dataclass(frozen=True)
class OffsetGroup:
    """The support entries at one kernel offset ``(a, b)``: ``start:end`` of the plan's order."""

    a: int
    b: int
    start: int
    end: int


def sparse_plan(
    indices: Tensor, weight_shape: torch.Size
) -> tuple[list[OffsetGroup], dict[str, Tensor]]:
    """CSR structure of ``S`` per kernel offset, for the matrix and its transpose.

    Flat index ``f = (o*in + c)*kh*kw + a*kw + b``. The support is ordered by offset, then
    ``(o, c)`` (``perm``: CSR of the ``out x in`` matrix ``S_ab``, row pointers ``crow[g]``,
    columns ``col``) and by offset, then ``(c, o)`` (``perm_t``, ``crow_t``, ``col_t``: CSR of
    ``S_ab^T``). Values change every step; this structure only when the support does.
    """
    out, cin, kh, kw = (int(s) for s in weight_shape)
    flat = indices.detach().to("cpu", torch.int64)
    offset, rest = flat % (kh * kw), flat // (kh * kw)
    rows, cols = rest // cin, rest % cin
    perm = torch.argsort(offset, stable=True)  # flat is ascending: (offset, o, c) order
    perm_t = torch.argsort((offset * cin + cols) * out + rows)
    counts = torch.bincount(offset, minlength=kh * kw)
    ends = counts.cumsum(0)
    groups, crow, crow_t = [], [], []
    for i in torch.nonzero(counts).reshape(-1).tolist():
        group = OffsetGroup(i // kw, i % kw, int(ends[i] - counts[i]), int(ends[i]))
        groups.append(group)
        part, part_t = perm[group.start : group.end], perm_t[group.start : group.end]
        crow.append(F.pad(torch.bincount(rows[part], minlength=out).cumsum(0), (1, 0)))
        crow_t.append(F.pad(torch.bincount(cols[part_t], minlength=cin).cumsum(0), (1, 0)))
    empty = torch.zeros(0, 1, dtype=torch.int64)
    plan = {
        "perm": perm,
        "col": cols[perm],
        "crow": torch.stack(crow) if crow else empty,
        "perm_t": perm_t,
        "col_t": rows[perm_t],
        "crow_t": torch.stack(crow_t) if crow_t else empty,
    }
    return groups, plan


_PLAN_KEYS = ("perm", "col", "crow", "perm_t", "col_t", "crow_t")


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """A CSR matrix on a precomputed structure (no checks, no beta-state warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


@dataclass(frozen=True)
class ConvGeometry:
    """Stride, padding and dilation of a conv: where each kernel offset reads, which are outputs."""

    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    def shift(self, group: OffsetGroup, padded_width: int) -> int:
        """How far kernel offset ``(a, b)`` reads from the output position, flat in the map."""
        return group.a * self.dilation[0] * padded_width + group.b * self.dilation[1]

    def outputs(self, full: Tensor, out_size: tuple[int, int]) -> Tensor:
        """The positions of a padded-map tensor ``(..., Hp, Wp)`` that are conv outputs."""
        (sh, sw), (oh, ow) = self.stride, out_size
        return full[..., : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw]


class SparseConv2dFunction(torch.autograd.Function):
    """Adds ``conv2d(x, S)`` into ``base`` in place, computed from S's nonzeros only.

    Channel-major layout without im2col: the zero-padded input as an ``in x (N*Hp*Wp)`` matrix
    ``X``; kernel offset ``(a, b)`` reads ``X`` shifted by ``s_ab = a*dh*Wp + b*dw`` columns, a
    strided slice (no copy), so ``Y[:, :M] += S_ab @ X[:, s_ab : s_ab + M]`` (CSR times dense,
    O(nnz * N*Hp*Wp)) over all offsets gives the conv at every padded position, whose valid
    (and strided) ones are the outputs. Backward: ``dX[:, s_ab:] += S_ab^T dY`` the same way, and
    ``dS_ab = dY X_ab^T`` sampled on the support (``torch.sparse.sampled_addmm``; the shifted
    ``X_ab`` is copied into one reused buffer). Work grows with k; memory is a few copies of the
    input and output, never the layer's size.
    """

    @staticmethod
    def forward(
        ctx: Any,
        base: Tensor,
        x: Tensor,
        values: Tensor,
        plan: dict[str, Tensor],
        groups: list[OffsetGroup],
        geometry: ConvGeometry,
    ) -> Tensor:
        batch, out, out_h, out_w = base.shape
        cin, (ph, pw) = x.shape[1], geometry.padding
        x_cm = x.new_zeros(cin, batch, x.shape[2] + 2 * ph, x.shape[3] + 2 * pw)
        x_cm[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]] = x.transpose(0, 1)
        width = x_cm.shape[3]
        flat = x_cm.view(cin, -1)
        columns = flat.shape[1] - max(geometry.shift(g, width) for g in groups)
        acc = base.new_zeros(out, flat.shape[1])
        for g, group in enumerate(groups):
            shift = geometry.shift(group, width)
            part = values[plan["perm"][group.start : group.end]]
            matrix = _csr(plan["crow"][g], plan["col"][group.start : group.end], part, (out, cin))
            acc[:, :columns].addmm_(matrix, flat[:, shift : shift + columns])
        full = acc.view(out, batch, *x_cm.shape[2:])
        base.add_(geometry.outputs(full, (out_h, out_w)).transpose(0, 1))
        ctx.mark_dirty(base)
        ctx.save_for_backward(x_cm, values)
        ctx.plan, ctx.groups, ctx.geometry, ctx.columns = plan, groups, geometry, columns
        return base

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x_cm, values = ctx.saved_tensors
        plan, groups, geometry, columns = ctx.plan, ctx.groups, ctx.geometry, ctx.columns
        out, cin, width = grad.shape[1], x_cm.shape[0], x_cm.shape[3]
        grad_full = grad.new_zeros(out, *x_cm.shape[1:])
        geometry.outputs(grad_full, (grad.shape[2], grad.shape[3])).copy_(grad.transpose(0, 1))
        grad_flat, flat = grad_full.view(out, -1), x_cm.view(cin, -1)
        grad_x = torch.zeros_like(x_cm) if ctx.needs_input_grad[1] else None
        grad_values = torch.zeros_like(values) if ctx.needs_input_grad[2] else None
        shifted = torch.zeros_like(flat) if grad_values is not None else None
        for g, group in enumerate(groups):
            span, shift = slice(group.start, group.end), geometry.shift(group, width)
            if grad_values is not None and shifted is not None:
                shifted[:, :columns] = flat[:, shift : shift + columns]
                pattern = _csr(plan["crow"][g], plan["col"][span], values[span], (out, cin))
                sampled = torch.sparse.sampled_addmm(pattern, grad_flat, shifted.t(), beta=0.0)
                grad_values[plan["perm"][span]] = sampled.values()
            if grad_x is not None:
                part = values[plan["perm_t"][span]]
                matrix_t = _csr(plan["crow_t"][g], plan["col_t"][span], part, (cin, out))
                target = grad_x.view(cin, -1)[:, shift : shift + columns]
                target.addmm_(matrix_t, grad_flat[:, :columns])
        if grad_x is not None:
            (ph, pw), (h, w) = geometry.padding, (x_cm.shape[2], x_cm.shape[3])
            grad_x = grad_x[:, :, ph : h - ph, pw : w - pw].transpose(0, 1)
        return grad, grad_x, grad_values, None, None, None


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
