"""Selections: the exact global top-k over scores, and seeded random positions inside a layer.

Every score-based method ends in :func:`global_topk`, every random method in
:func:`random_layer_masks`; neither uses a threshold comparison, so counts are exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from methods.errors import AllocationFailed


def _flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def global_topk(
    scores: Mapping[str, torch.Tensor],
    k: int,
    *,
    candidates: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Keep exactly the ``k`` largest scores over all layers; ties go to the lower flat index.

    The flat index is the position in the concatenation of all scores in mapping order, each
    flattened row-major (methods-reference.md s.1). With ``candidates`` (bool masks), only those
    may be kept (monotone iterative methods). Non-finite scores or too few candidates raise
    :class:`AllocationFailed`. Runs in O(N): one ``topk`` for the k-th value, then the ties.
    """
    names = list(scores)
    flat = _flatten([scores[n].detach() for n in names])
    if flat.is_floating_point() and not torch.isfinite(flat).all():
        raise AllocationFailed("non-finite saliency scores")
    if k <= 0:
        raise AllocationFailed(f"cannot keep k = {k} weights")
    if k > flat.numel():
        raise AllocationFailed(f"cannot keep k = {k} of {flat.numel()} weights")
    if candidates is not None:
        allowed = _flatten([candidates[n].to(flat.device) for n in names])
        available = int(allowed.sum())
        if available < k:
            raise AllocationFailed(f"only {available} candidates for k = {k}")
        flat = torch.where(allowed, flat, torch.tensor(float("-inf"), dtype=flat.dtype))
    if k == flat.numel():
        keep = torch.ones_like(flat, dtype=torch.bool)
    else:
        threshold = torch.topk(flat, k, sorted=False).values.min()
        keep = flat > threshold
        short = k - int(keep.sum())
        if short > 0:
            ties = torch.nonzero(flat == threshold).reshape(-1)[:short]
            keep[ties] = True
    masks: dict[str, torch.Tensor] = {}
    offset = 0
    for name in names:
        size = scores[name].numel()
        masks[name] = keep[offset : offset + size].reshape(scores[name].shape).cpu()
        offset += size
    return masks


def random_positions(numel: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct flat positions in ``range(numel)``, uniform, drawn on the CPU."""
    return torch.randperm(numel, generator=generator)[:count]


def random_layer_masks(
    shapes: Mapping[str, torch.Size], counts: Mapping[str, int], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """For each layer in order, a mask with ``counts[name]`` positions drawn uniformly at random."""
    masks = {}
    for name, shape in shapes.items():
        numel = int(torch.Size(shape).numel())
        mask = torch.zeros(numel, dtype=torch.bool)
        mask[random_positions(numel, counts[name], generator)] = True
        masks[name] = mask.reshape(shape)
    return masks
