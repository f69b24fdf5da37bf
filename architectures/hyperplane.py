"""Hyperplane Projection (Li et al., 2018, "Measuring the Intrinsic Dimension of Objective
Landscapes"): train ``k`` coordinates ``theta`` of a random subspace, ``w = w0 + P theta``.

``w0`` is the dense initialisation of every prunable weight (fixed), ``P`` an ``N x k`` random
embedding with unit-norm columns (fixed) and ``theta`` starts at 0, so the network starts as the
dense one. Li et al.'s three projections (their ``keras_ext/rproj_layers_util.py``):

- ``dense``: Gaussian entries, each column normalised to unit norm;
- ``sparse``: a very sparse random projection (Li, Hastie & Church 2006, as scikit-learn's
  ``SparseRandomProjection`` that Li et al. call): each entry non-zero with probability
  ``1/sqrt(N)``, here drawn as ``round(sqrt(N))`` positions per column with random signs, then
  each column normalised to unit norm (Li et al. normalise the same way);
- ``fastfood``: ``P theta = H G Pi H B [theta; 0] / (divisor * sqrt(N / L))`` truncated to ``N``
  rows, ``L = 2**ceil(log2 N)``, ``H`` the unnormalised Walsh-Hadamard transform, ``B`` random
  signs, ``Pi`` a permutation, ``G`` Gaussian and ``divisor = sqrt(L * sum(G**2))``: every column
  of the untruncated transform has norm exactly ``divisor``, so before truncation the columns
  have unit norm; the ``sqrt(N / L)`` factor keeps their expected norm at 1 after it (Li et al.'s
  definition). O(L log L) per step and O(L) memory.

``w0`` and ``P`` are rebuilt from a seed and never saved: a checkpoint holds ``theta`` and the
ordinary (non-prunable) parameters only.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from architectures.prunable import prunable_layers

Projection = Literal["dense", "sparse", "fastfood"]
PROJECTIONS: tuple[str, ...] = ("dense", "sparse", "fastfood")
# Li et al. chose dense for small networks, sparse for medium and fastfood for large ones. The
# limits below come from benchmarks/hyperplane.py (LeNet-5, docs/performance.md): a dense P of
# N * k entries is the fastest up to about 4M entries; a sparse P's k * sqrt(N) entries cost
# less than Fastfood's two Walsh-Hadamard transforms (2 L log2 L) up to about an eighth of them.
DENSE_LIMIT = 4_000_000


def default_projection(total: int, k: int) -> Projection:
    """The fastest exact projection for ``N = total`` weights and ``k`` coordinates."""
    if total * k <= DENSE_LIMIT:
        return "dense"
    size = 2 ** math.ceil(math.log2(max(total, 2)))
    if k * round(math.sqrt(total)) <= size * math.log2(size) / 8:
        return "sparse"
    return "fastfood"


def fwht(x: Tensor) -> Tensor:
    """The unnormalised Walsh-Hadamard transform of a vector whose length is a power of two."""
    n = x.numel()
    h = 1
    while h < n:
        y = x.view(-1, 2, h)
        x = torch.stack((y[:, 0] + y[:, 1], y[:, 0] - y[:, 1]), dim=1)
        h *= 2
    return x.reshape(n)


class DenseProjection(nn.Module):
    """``P theta`` with a stored Gaussian ``P`` whose columns have unit norm."""

    def __init__(self, total: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        matrix = torch.randn(total, k, generator=generator)
        matrix /= matrix.norm(dim=0, keepdim=True)
        self.register_buffer("matrix", matrix, persistent=False)

    def forward(self, theta: Tensor) -> Tensor:
        return self.matrix @ theta


class SparseProjection(nn.Module):
    """``P theta`` with a very sparse ``P`` (about ``sqrt(N)`` signed entries per column)."""

    def __init__(self, total: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        per_column = max(1, round(math.sqrt(total)))
        rows = torch.randint(0, total, (k, per_column), generator=generator).reshape(-1)
        cols = torch.arange(k).repeat_interleave(per_column)
        signs = torch.randint(0, 2, (k * per_column,), generator=generator) * 2.0 - 1.0
        shape = (total, k)
        indices = torch.stack((rows, cols))
        matrix = torch.sparse_coo_tensor(indices, signs, shape, check_invariants=True).coalesce()
        norms = torch.zeros(k).index_add_(0, matrix.indices()[1], matrix.values() ** 2).sqrt()
        values = matrix.values() / norms[matrix.indices()[1]]
        normalised = torch.sparse_coo_tensor(
            matrix.indices(), values, shape, check_invariants=True, is_coalesced=True
        )
        self.register_buffer("matrix", normalised, persistent=False)

    def forward(self, theta: Tensor) -> Tensor:
        return torch.sparse.mm(self.matrix, theta.unsqueeze(1)).squeeze(1)


class FastfoodProjection(nn.Module):
    """``P theta`` by Li et al.'s Fastfood transform (see the module docstring)."""

    def __init__(self, total: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        self.total, self.k = total, k
        self.size = 2 ** math.ceil(math.log2(max(total, 2)))
        signs = torch.randint(0, 2, (self.size,), generator=generator) * 2.0 - 1.0
        permutation = torch.randperm(self.size, generator=generator)
        gaussian = torch.randn(self.size, generator=generator)
        divisor = math.sqrt(self.size * float((gaussian**2).sum()))
        self.register_buffer("signs", signs, persistent=False)
        self.register_buffer("permutation", permutation, persistent=False)
        self.register_buffer("gaussian", gaussian, persistent=False)
        self.scale = 1.0 / (divisor * math.sqrt(total / self.size))

    def untruncated(self, theta: Tensor) -> Tensor:
        """``H G Pi H B [theta; 0]``: all ``L`` rows, before truncation and scaling."""
        padded = torch.cat((theta, theta.new_zeros(self.size - theta.numel())))
        mixed = fwht(self.signs.to(theta.dtype) * padded)[self.permutation]
        return fwht(mixed * self.gaussian.to(theta.dtype))

    def forward(self, theta: Tensor) -> Tensor:
        return self.untruncated(theta)[: self.total] * self.scale


def make_projection(kind: str, total: int, k: int, generator: torch.Generator) -> nn.Module:
    """The projection ``kind`` from ``k`` coordinates to ``total`` weights."""
    classes = {"dense": DenseProjection, "sparse": SparseProjection, "fastfood": FastfoodProjection}
    if kind not in classes:
        raise ValueError(f"unknown projection {kind!r} (valid: {', '.join(PROJECTIONS)})")
    if not 0 < k <= total:
        raise ValueError(f"a projection needs 0 < k <= N, got k = {k}, N = {total}")
    return classes[kind](total, k, generator)


class HyperplaneNet(nn.Module):
    """``model`` whose prunable weights are ``w0 + P theta``: only ``theta`` (and the model's
    non-prunable parameters) train.

    The prunable weights become non-persistent buffers holding ``w0``; every forward computes
    ``P theta`` once for all layers and calls the model with the moved weights.
    """

    def __init__(self, model: nn.Module, projection: nn.Module, k: int) -> None:
        super().__init__()
        layers = prunable_layers(model)
        self.names = [layer.name for layer in layers]
        self.shapes = [tuple(layer.weight.shape) for layer in layers]
        w0 = torch.cat([layer.weight.detach().reshape(-1) for layer in layers])
        for layer in layers:
            del layer.module.weight
            layer.module.register_buffer("weight", torch.empty(0), persistent=False)
        self.model = model
        self.projection = projection
        self.register_buffer("w0", w0.clone(), persistent=False)
        self.theta = nn.Parameter(torch.zeros(k, dtype=w0.dtype))

    def weights(self) -> dict[str, Tensor]:
        """The prunable weights at the current ``theta``, by name."""
        flat = self.w0 + self.projection(self.theta)
        out, start = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = math.prod(shape)
            out[name] = flat[start : start + size].view(shape)
            start += size
        return out

    def forward(self, x: Tensor) -> Tensor:
        return functional_call(self.model, self.weights(), (x,))


def projection_bytes(projection: nn.Module) -> int:
    """Bytes the projection keeps (its buffers; sparse ones counted by their entries)."""
    total = 0
    for buffer in projection.buffers():
        if buffer.layout == torch.sparse_coo:
            parts = (buffer.values(), buffer.indices())
            total += sum(p.numel() * p.element_size() for p in parts)
        else:
            total += buffer.numel() * buffer.element_size()
    return total
