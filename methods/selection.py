"""Selections: the exact global top-k over scores, and seeded random positions inside a layer.

The one home of the global top-k (methods-reference.md s.1 rule 1: exact count, ties to the lower
flat index, never a threshold comparison). :func:`global_topk` is the definition, over named
scores, with optional candidates; :func:`select_top` computes the same answer over a list of
per-layer score tensors without handing all of them to ``topk``: :func:`_window` first proves
which scores are certainly kept and brackets the threshold in about 2% of them. Every random
method ends in :func:`random_layer_masks` (exact per-layer counts, positions from the seed).
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


def _window(
    parts: Sequence[torch.Tensor], k: int
) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
    """Bracket the ``k``-th largest entry: ``(above, boundary, count_above)`` as bool masks.

    Two thresholds ``lo <= hi`` are read off a strided sample around the wanted quantile and
    checked by counting: ``#{s > hi} < k <= #{s >= lo}``. Then every entry ``> hi`` is among
    the ``k`` largest and the ``k``-th largest lies in ``lo <= s <= hi``; if a count disagrees
    the window is widened on that side, down to the whole range. The sample only decides how
    much work the exact selection does, never what it selects.
    """
    total = sum(p.numel() for p in parts)
    stride = max(1, total // 65536)
    sample = torch.cat([p.reshape(-1)[::stride] for p in parts]).sort().values
    size = int(sample.numel())
    centre = size * (1 - k / total)
    below_margin = above_margin = max(32, size // 100)
    while True:
        j_lo, j_hi = int(centre) - below_margin, int(centre) + above_margin
        above = [p > sample[j_hi] for p in parts] if j_hi < size else [
            torch.zeros_like(p, dtype=torch.bool) for p in parts]
        count_above = sum(int(torch.count_nonzero(m)) for m in above)
        if count_above >= k:
            above_margin *= 4
            continue
        boundary = [p >= sample[j_lo] for p in parts] if j_lo >= 0 else [
            torch.ones_like(p, dtype=torch.bool) for p in parts]
        if sum(int(torch.count_nonzero(m)) for m in boundary) < k:
            below_margin *= 4
            continue
        for b, a in zip(boundary, above):
            b &= ~a
        return above, boundary, count_above


def select_top(parts: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Exact top ``k`` over the concatenation of ``parts`` (ties: lower flat index) -> masks.

    Equal, bit for bit, to ``global_topk(parts, k)``, computed without materialising all the
    scores: :func:`_window` proves that every score above ``hi`` is kept and that the rest of
    the answer lies in ``lo <= s <= hi``, and :func:`global_topk` picks those ``k - #{s > hi}``
    among the window's scores, kept in flat order so that ties still go to the lower flat index.
    The window holds about 2% of the scores, so the selection costs a few passes of
    comparisons instead of a top-k over everything. Scores must be finite (checked before).
    """
    total = sum(p.numel() for p in parts)
    if k >= total:
        return [torch.ones_like(p, dtype=torch.bool) for p in parts]
    above, boundary, count_above = _window(parts, k)
    values = {
        str(i): part.reshape(-1)[window.reshape(-1)]
        for i, (part, window) in enumerate(zip(parts, boundary))
    }
    picked = global_topk(values, k - count_above)  # 0 < k - count_above <= window size
    for i, (keep, window) in enumerate(zip(above, boundary)):
        keep.view(-1).masked_scatter_(window.view(-1), picked[str(i)].to(keep.device))
    return above


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
