"""The ``factored`` DCTpS convolution's pieces: the patch DCT as a 1x1 channel transform plus a
depthwise conv, and the sparse part applied from its k nonzeros as CSR matrices."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from architectures.dct import dct_scale


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
