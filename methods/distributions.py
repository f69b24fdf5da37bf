"""Per-layer counts: the capped proportional rule behind uniform, EPL, EPF and ERK.

Each distribution gives every layer a weight ``v_l``; layers whose proportional share would
exceed their size are kept whole and the surplus is re-spread over the rest, until the counts
sum to exactly ``k`` (methods-reference.md s.2, "Harness rule"). This is deliberately not the
reference's clip-and-dump rule (defect 1 of the reference table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from architectures import PrunableLayer

Distribution = Literal["uniform", "epl", "epf", "erk"]

LAYER_WEIGHTS: dict[str, Callable[[PrunableLayer], int]] = {
    "uniform": lambda layer: layer.numel,
    "epl": lambda layer: 1,
    "epf": lambda layer: layer.out_features,
    "erk": lambda layer: sum(layer.weight.shape),
}


def capped_proportional(sizes: Sequence[int], weights: Sequence[int], k: int) -> list[int]:
    """Split ``k`` over layers of ``sizes`` in proportion to ``weights``, capping at each size.

    Integer arithmetic throughout: saturated layers are found by ``n_l * V <= R * v_l``, the rest
    get ``floor(R * v_l / V)`` and the leftover units go to the largest remainders, ties to the
    earlier layer. Always ``sum == k`` and ``0 <= count_l <= size_l``.
    """
    if len(sizes) != len(weights):
        raise ValueError("sizes and weights differ in length")
    if not 0 <= k <= sum(sizes):
        raise ValueError(f"k = {k} is outside [0, {sum(sizes)}]")
    if any(v <= 0 for v in weights):
        raise ValueError("layer weights must be positive")
    counts = [0] * len(sizes)
    open_layers = list(range(len(sizes)))
    remaining = k
    while open_layers:
        total_weight = sum(weights[i] for i in open_layers)
        saturated = [i for i in open_layers if sizes[i] * total_weight <= remaining * weights[i]]
        if not saturated:
            break
        for i in saturated:
            counts[i] = sizes[i]
            remaining -= sizes[i]
        open_layers = [i for i in open_layers if i not in set(saturated)]
    if open_layers:
        total_weight = sum(weights[i] for i in open_layers)
        remainders = {}
        for i in open_layers:
            counts[i], remainders[i] = divmod(remaining * weights[i], total_weight)
        leftover = remaining - sum(counts[i] for i in open_layers)
        for i in sorted(open_layers, key=lambda i: (-remainders[i], i))[:leftover]:
            counts[i] += 1
    return counts


def layer_counts(layers: Sequence[PrunableLayer], k: int, distribution: str) -> list[int]:
    """Counts per layer for ``distribution`` (``uniform``, ``epl``, ``epf`` or ``erk``)."""
    try:
        weight_of = LAYER_WEIGHTS[distribution]
    except KeyError:
        raise ValueError(
            f"unknown distribution {distribution!r} (valid: {', '.join(LAYER_WEIGHTS)})"
        ) from None
    return capped_proportional(
        [layer.numel for layer in layers], [weight_of(layer) for layer in layers], k
    )
