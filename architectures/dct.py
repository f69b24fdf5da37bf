"""The orthonormal DCT-II: the matrix, the DCTpS offset ``D`` of a layer, and a fast FFT form.

``C_q[k, i] = s_k * cos(pi * k * (2i + 1) / (2q))`` with ``s_0 = sqrt(1/q)``, ``s_k = sqrt(2/q)``
(rows are frequencies); ``C_q @ x`` equals ``scipy.fft.dct(x, norm="ortho")``. A layer with ``m``
outputs and ``p`` inputs uses the top-left block ``C_q[:m, :p]``, ``q = max(m, p)``
(methods-reference.md s.7). Everything is computed in float64 and cast at the end, so ``D`` is
the correctly rounded DCT in any dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

DCTOrder = Literal["hwc", "chw"]


def dct_scale(
    q: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """The row scales ``s_k`` of the orthonormal DCT-II of length ``q``."""
    scale = torch.full((q,), math.sqrt(2.0 / q), dtype=torch.float64, device=device)
    scale[0] = math.sqrt(1.0 / q)
    return scale.to(dtype)


def dct_matrix(
    q: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """The ``q x q`` orthonormal DCT-II matrix ``C_q`` (rows = frequencies, ``C_q C_q^T = I``)."""
    return dct_block(q, q, dtype, device)


def dct_block(
    rows: int,
    cols: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``C_q[:rows, :cols]`` with ``q = max(rows, cols)``, without building the full ``q x q``."""
    q = max(rows, cols)
    k = torch.arange(rows, dtype=torch.float64, device=device)[:, None]
    i = torch.arange(cols, dtype=torch.float64, device=device)[None, :]
    if rows < 1 or cols < 1:
        raise ValueError(f"DCT block must be non-empty, got {rows} x {cols}")
    block = dct_scale(q, device=device)[:rows, None] * torch.cos(
        math.pi * k * (2 * i + 1) / (2 * q)
    )
    return block.to(dtype)


def dctps_offset(
    weight_shape: Sequence[int],
    groups: int = 1,
    order: DCTOrder = "hwc",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The fixed DCT offset ``D`` of a Linear or Conv2d weight, with the weight's shape.

    Linear ``(m, n)``: ``C_q[:m, :n]``. Conv2d ``(out, in_g, kh, kw)`` (``in_g = in/groups``): the
    rows of the ``out x (in_g*kh*kw)`` matrix ``C_q[:out, :p]``, each patch flattened input channel
    fastest (``order="hwc"``, the reference's: entry ``(o, c, a, b) = C_q[o, (a*kw + b)*in_g + c]``)
    or channel slowest (``"chw"``, PyTorch's ``reshape(out, -1)`` order; a different network).
    Grouped and depthwise convs use the same formula on their ``(out, in_g*kh*kw)`` weight, as the
    reference does: a fixed matrix, not the DCT of any vector. ``groups`` only validates the shape.
    """
    shape = tuple(int(s) for s in weight_shape)
    if len(shape) == 2:
        return dct_block(shape[0], shape[1], dtype, device)
    if len(shape) != 4:
        raise ValueError(f"expected a Linear (2-d) or Conv2d (4-d) weight shape, got {shape}")
    out, in_g, kh, kw = shape
    if groups < 1 or out % groups:
        raise ValueError(f"{out} output channels cannot be split into {groups} groups")
    block = dct_block(out, in_g * kh * kw, dtype, device)
    if order == "hwc":
        # clone, not contiguous(): a 1x1 permute already "is contiguous" but keeps channels-last
        # strides, which would send every conv using D down the channels-last path
        hwc = block.reshape(out, kh, kw, in_g).permute(0, 3, 1, 2)
        return hwc.clone(memory_format=torch.contiguous_format)
    if order == "chw":
        return block.reshape(shape)
    raise ValueError(f"unknown DCT order {order!r} (valid: 'hwc', 'chw')")


def _twiddle(q: int, sign: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``exp(sign * i * pi * k / (2q))`` for ``k < q`` as a complex tensor."""
    k = torch.arange(q, dtype=torch.float64, device=device)
    twiddle = torch.polar(torch.ones_like(k), sign * math.pi * k / (2 * q))
    return twiddle.to(torch.complex128 if dtype == torch.float64 else torch.complex64)


def dct(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-II along the last dimension through one complex FFT (equals ``x @ C_q.T``).

    Makhoul's reordering: ``v = (x_0, x_2, x_4, ..., x_5, x_3, x_1)``, ``V = FFT(v)``,
    ``y_k = s_k * Re(exp(-i pi k / 2q) V_k)``; ``O(q log q)`` instead of ``O(q^2)``.
    """
    q = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    spectrum = torch.fft.fft(v, dim=-1) * _twiddle(q, -1.0, x.dtype, x.device)
    return spectrum.real * dct_scale(q, x.dtype, x.device)


def idct(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct` along the last dimension (equals ``y @ C_q``), through one FFT.

    ``X_k = y_k / s_k``, ``X_q = 0``, ``V_k = exp(i pi k / 2q) (X_k - i X_{q-k})``,
    ``v = Re(IFFT(V))``, then ``x_{2j} = v_j`` and ``x_{2j+1} = v_{q-1-j}``.
    """
    q = y.shape[-1]
    coeffs = y / dct_scale(q, y.dtype, y.device)
    mirrored = torch.cat([torch.zeros_like(coeffs[..., :1]), coeffs[..., 1:].flip(-1)], dim=-1)
    spectrum = _twiddle(q, 1.0, y.dtype, y.device) * torch.complex(coeffs, -mirrored)
    v = torch.fft.ifft(spectrum, dim=-1).real
    x = torch.empty_like(v)
    half = (q + 1) // 2
    x[..., ::2] = v[..., :half]
    x[..., 1::2] = v[..., half:].flip(-1)
    return x


def dct_linear(x: torch.Tensor, out_features: int) -> torch.Tensor:
    """``x @ C_q[:m, :n].T`` by the FFT: zero-pad the input to ``q``, DCT, keep the first ``m``."""
    n = x.shape[-1]
    q = max(n, out_features)
    return dct(torch.nn.functional.pad(x, (0, q - n)))[..., :out_features]


def dct_linear_transpose(g: torch.Tensor, in_features: int) -> torch.Tensor:
    """``g @ C_q[:m, :n]``, the backward of :func:`dct_linear`: pad, inverse DCT, keep ``n``."""
    m = g.shape[-1]
    q = max(m, in_features)
    return idct(torch.nn.functional.pad(g, (0, q - m)))[..., :in_features]
