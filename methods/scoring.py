"""Shared machinery of the saliency methods: one scoring copy, batches, schedules, survivors.

Every score-based method (SNIP, GraSP, SynFlow, FORCE, Iter-SNIP) works on *one* deep copy of
the model, made once, on the context's device, in the dtype it scores in (methods-reference.md
s.1 rule 6: the model given to ``allocate`` is never touched). Iterative methods mask that copy
in place between steps (no per-step copy of the model) and keep one iterator over the context's
batches (no fresh iterator per step). Gradients are the ones ``backward`` stores, used in place
as scores and dropped before selection, so a step holds at most the copy, its gradients and the
selection's buffers.

Selection is always :func:`methods.selection.global_topk` (exact count, ties to the lower flat
index, s.1 rule 1), through :func:`select_top`, which hands it only the window of scores
around the threshold (about 2%) after proving that everything above the window is kept.
Monotone methods (SynFlow, Iter-SNIP) select among their survivors only (:class:`Survivors`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import nn

from architectures import PrunableLayer, prunable_layers
from methods.allocation import Allocation
from methods.base import AllocationContext, Batch, Method, PassCounter, check_density
from methods.errors import AllocationFailed
from methods.selection import global_topk

Schedule = Literal["exp", "linear"]
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------
# Schedules (s.1 rule 3)
# --------------------------------------------------------------------------------------------
def densities(density: float, steps: int, schedule: Schedule = "exp") -> list[float]:
    """Density of each step ``t = 1..T``: ``d**(t/T)`` (exp) or ``1 - (1-d)*t/T`` (linear)."""
    if steps < 1:
        raise ValueError(f"an iterative schedule needs at least 1 step, got {steps}")
    if schedule == "exp":
        return [density ** (t / steps) for t in range(1, steps + 1)]
    if schedule == "linear":
        return [1.0 - (1.0 - density) * t / steps for t in range(1, steps + 1)]
    raise ValueError(f"unknown schedule {schedule!r} (valid: exp, linear)")


def step_counts(density: float, steps: int, total: int, schedule: Schedule = "exp") -> list[int]:
    """``k_t = round(d_t * N)`` per step, with ``k_T`` forced to ``K = round(d * N)`` (s.1 rule 3).

    Non-increasing and never below ``K``; the last entry is exactly what ``allocate`` checks.
    """
    counts = [min(total, round(d_t * total)) for d_t in densities(density, steps, schedule)]
    counts[-1] = round(density * total)
    for t in range(len(counts) - 2, -1, -1):  # guard against float noise in d**(t/T)
        counts[t] = max(counts[t], counts[t + 1])
    return counts


# --------------------------------------------------------------------------------------------
# The scoring copy
# --------------------------------------------------------------------------------------------
class ScoringCopy:
    """One deep copy of ``model`` on ``device``: the only dense copy a saliency method makes.

    ``dtype`` casts every floating parameter and buffer (SynFlow's float64); ``absolute`` replaces
    every floating entry by its absolute value (SynFlow's linearisation, s.5). The copy is built
    tensor by tensor straight on the device and in the target dtype (``deepcopy`` with a
    pre-filled memo), so no second full copy exists even transiently, and the original is never
    written to. Only the prunable weights (:attr:`weights`, layer order) require gradients.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[PrunableLayer],
        device: torch.device | str,
        *,
        dtype: torch.dtype | None = None,
        absolute: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.names = [layer.name for layer in layers]

        def converted(tensor: torch.Tensor) -> torch.Tensor:
            target = dtype if (dtype is not None and tensor.is_floating_point()) else tensor.dtype
            out = tensor.detach().to(device=self.device, dtype=target, copy=True)
            if absolute and out.is_floating_point():
                out.abs_()
            return out

        prunable = {id(layer.weight) for layer in layers}
        memo: dict[int, Any] = {}
        with torch.no_grad():
            for tensor in model.parameters():
                grad = id(tensor) in prunable
                memo[id(tensor)] = nn.Parameter(converted(tensor), requires_grad=grad)
            for tensor in model.buffers():
                memo[id(tensor)] = converted(tensor)
            self.model = copy.deepcopy(model, memo)
        self.model.to(self.device)  # anything registered outside parameters()/buffers()
        copied = prunable_layers(self.model)
        if [layer.name for layer in copied] != self.names:
            raise RuntimeError("the scoring copy's prunable layers differ from the model's")
        self.weights: list[torch.Tensor] = [layer.weight for layer in copied]
        self.dtype = self.weights[0].dtype

    def zero_grad(self) -> None:
        """Drop the weights' gradients (the next backward stores fresh ones without a copy)."""
        for weight in self.weights:
            weight.grad = None

    def grads(self) -> list[torch.Tensor]:
        """The accumulated gradient of every prunable weight (zeros where none flowed)."""
        return [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]

    def accumulate(
        self, batches: Sequence[Batch], objective: Objective, passes: PassCounter
    ) -> None:
        """Add ``d objective(model(x), y) / dw`` of every batch to the weights' ``.grad``."""
        for x, y in batches:
            x = x.to(self.device, self.dtype if x.is_floating_point() else x.dtype)
            loss = objective(self.model(x), y.to(self.device))
            loss.backward()
            passes.forward += 1
            passes.backward += 1

    def as_masks(self, keep: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{name: CPU bool mask}`` from per-layer keep tensors."""
        return {name: m.to("cpu", torch.bool) for name, m in zip(self.names, keep, strict=True)}


# --------------------------------------------------------------------------------------------
# Exact selection and the survivors of a monotone schedule (SynFlow, Iter-SNIP)
# --------------------------------------------------------------------------------------------
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


def check_scores(scores: Sequence[torch.Tensor], step: str) -> int:
    """Raise on non-finite scores (naming ``step``); return ``P``, the count of scores > 0.

    One float64 sum per part decides finiteness (a NaN or an infinity makes it non-finite); only
    a non-finite sum, which huge finite scores could also cause, is checked element by element.
    """
    for part in scores:
        if not math.isfinite(float(part.sum(dtype=torch.float64))) and not bool(
            torch.isfinite(part).all()
        ):
            raise AllocationFailed(f"{step}: non-finite saliency scores")
    return sum(int(torch.count_nonzero(part > 0)) for part in scores)


class ScheduledMethod(Method):
    """A method whose schedule needs the requested density ``d`` itself, not only ``k``.

    ``d_t = d**(t/T)`` must use the ``d`` the run asked for (s.1 rule 3): ``k / N`` can differ
    from it enough to move an intermediate ``k_t`` by one. :meth:`allocate` remembers ``d`` for
    :meth:`select`; wrappers calling ``select`` directly set it with :meth:`requested`.
    """

    _density: float | None = None

    def allocate(
        self, model: nn.Module, density: float, *, context: AllocationContext | None = None
    ) -> Allocation:
        with self.requested(density):
            return super().allocate(model, density, context=context)

    @contextlib.contextmanager
    def requested(self, density: float) -> Iterator[None]:
        previous, self._density = self._density, check_density(density)
        try:
            yield
        finally:
            self._density = previous

    def density_for(self, k: int, total: int) -> float:
        """The requested density, or ``k / N`` when ``select`` is called on its own."""
        return self._density if self._density is not None else k / total


# --------------------------------------------------------------------------------------------
# Batches: drawn from the context, recorded
# --------------------------------------------------------------------------------------------
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


DEFAULT_BATCHES = {"cifar10": 1, "cifar100": 10, "tinyimagenet": 20}


def default_num_batches(dataset: str | None) -> int:
    """Batches per step (paper Table 3): 1 CIFAR-10, 10 CIFAR-100, 20 Tiny ImageNet, else 1."""
    key = "".join(ch for ch in (dataset or "").lower() if ch.isalnum())
    return DEFAULT_BATCHES.get(key, 1)


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
