"""The data side of the data-driven methods: which batches they draw, and a record of them.

SNIP and GraSP score one fixed *prune set* (:func:`prune_set`); FORCE and Iter-SNIP draw fresh
batches at every step from one iterator over the context's batches (:class:`BatchStream`, no
fresh iterator per step). Every batch used is hashed into a :class:`BatchLog`, stored with the
allocation, so two runs can be shown to have seen the same data. Train-mode passes run under
:func:`seeded_global_rng`, so layers drawing from the global RNG (dropout) depend on the run
seed only.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import torch

from methods.base import AllocationContext, Batch


class BatchLog:
    """Records which batches a method used: their count, examples and a SHA-256 of their bytes."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.batches = 0
        self.examples = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for tensor in (x, y):
            data = tensor.detach().to("cpu").contiguous().reshape(-1)
            self._hash.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
            self._hash.update(data.view(torch.uint8).numpy().tobytes())
        self.batches += 1
        self.examples += int(x.shape[0])

    def info(self) -> dict[str, Any]:
        digest = self._hash.hexdigest()
        return {"batches": self.batches, "examples": self.examples, "sha256": digest}


def prune_set(
    context: AllocationContext, examples: int | None, batch_size: int | None, log: BatchLog
) -> list[Batch]:
    """SNIP/GraSP's prune set: ``examples`` examples from one iterator, regrouped by ``batch_size``.

    Follows SF (s.3): ``10 * num_classes`` examples in batches of 256 (one batch of 100 on
    CIFAR-10; 256, 256, 256, 232 on CIFAR-100). ``examples=None`` means ``10 * num_classes``, or
    the first batch when the context does not know the class count. A finite source with fewer
    examples is used whole.
    """
    if examples is None and context.num_classes is not None:
        examples = 10 * context.num_classes
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    have = 0
    for x, y in context.iter_batches():
        xs.append(x)
        ys.append(y)
        have += int(x.shape[0])
        if examples is None or have >= examples:
            break
    if have == 0:
        raise ValueError("the context's batches yielded no examples")
    if examples is None:
        examples = have
    x_all, y_all = torch.cat(xs)[:examples], torch.cat(ys)[:examples]
    size = batch_size or int(x_all.shape[0])
    batches = list(zip(torch.split(x_all, size), torch.split(y_all, size)))
    for x, y in batches:
        log.add(x, y)
    return batches


class BatchStream:
    """Fresh batches per step from one iterator of the context, restarted only when exhausted."""

    def __init__(self, context: AllocationContext, log: BatchLog) -> None:
        self.context = context
        self.log = log
        self._iterator: Iterator[Batch] = context.iter_batches()

    def take(self, count: int) -> list[Batch]:
        batches = []
        while len(batches) < count:
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = self.context.iter_batches()
                try:
                    batch = next(self._iterator)
                except StopIteration:
                    raise ValueError("the context's batches yielded no examples") from None
            self.log.add(*batch)
            batches.append(batch)
        return batches


@contextlib.contextmanager
def seeded_global_rng(context: AllocationContext) -> Iterator[int]:
    """Run train-mode passes with the global RNG seeded from the run's generator, then restore it.

    Layers drawing from the global RNG (dropout) then depend on the run seed only.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=context.generator))
    devices = [context.device] if torch.device(context.device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield seed
