"""The survivors of a monotone iterative schedule (SynFlow, Iter-SNIP, s.1 rule 2).

A monotone method selects at step ``t`` only among the weights kept at step ``t-1``.
:class:`Survivors` holds them as one bool mask per layer, gathers their scores in flat-index
order and keeps the top ``k_t`` of them with :func:`methods.selection.select_top`, so ties break
exactly as a selection over all ``N`` scores with the removed weights excluded would.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from methods.selection import select_top


class Survivors:
    """The weights kept so far; monotone methods score and select among them only (s.1 rule 2).

    Kept as one bool mask per layer (1 byte per weight, like the masks a reference holds; None
    while the whole layer survives). The survivors' scores are gathered in flat-index order, so
    :func:`select_top` over them breaks ties exactly as a selection over all ``N`` scores with
    the removed weights excluded would; their positions live only during one selection.
    """

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        self.alive: list[torch.Tensor | None] = [None] * len(weights)
        self.sizes = [w.numel() for w in weights]
        self._index: list[torch.Tensor | None] = []

    def __len__(self) -> int:
        return sum(n if a is None else int(torch.count_nonzero(a))
                   for n, a in zip(self.sizes, self.alive))

    def gather(
        self, weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """``|w * g|`` of each layer's survivors, in flat-index order.

        A layer whose weights all survive is scored in place in its gradient (no gather).
        """
        self._index = [None if a is None else torch.nonzero(a).reshape(-1) for a in self.alive]
        return [
            g.mul_(w.detach()).abs_().reshape(-1) if index is None
            else w.detach().reshape(-1)[index].mul_(g.reshape(-1)[index]).abs_()
            for w, g, index in zip(weights, grads, self._index)
        ]

    def keep_top(self, scores: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
        """Keep the top ``k`` of the scores :meth:`gather` returned; return each layer's removed
        flat positions."""
        keep = select_top(scores, k)
        removed = []
        for layer, (flags, index) in enumerate(zip(keep, self._index)):
            if index is None:
                if bool(flags.all()):
                    removed.append(flags.new_empty(0, dtype=torch.long))
                    continue
                self.alive[layer] = flags.clone()
                removed.append(torch.nonzero(~flags).reshape(-1))
            else:
                gone = index[~flags]
                self.alive[layer].view(-1)[gone] = False  # type: ignore[union-attr]
                removed.append(gone)
        self._index = []
        return removed

    def masks(self, weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per-layer bool masks of the survivors."""
        return [
            torch.ones(w.shape, dtype=torch.bool, device=w.device) if a is None
            else a.view(w.shape)
            for w, a in zip(weights, self.alive)
        ]

    @property
    def pruned(self) -> bool:
        """Whether any weight has been removed yet (a layer's mask exists once one has)."""
        return any(a is not None for a in self.alive)
