"""Allocation cost of the saliency methods against a straightforward, reference-style version.

    python benchmarks/allocation.py [--quick] [--archs resnet18,vgg19] [--methods synflow,...]
                                    [--density 0.01] [--threads N] [--repeat 2]

For each method and architecture (CIFAR input 3x32x32, 10 classes, random batches of 128 from
a fixed generator), runs the harness's method and a straightforward implementation written the
way the reference code is (a full copy of the model per step, a fresh iterator per step, every
score concatenated and a global ``kthvalue`` threshold at every step, then the exact-count tie
rule so that the masks can be compared), in the same process, on the same data. Prints seconds,
forward/backward passes and peak memory side by side, asserts that the masks are identical,
and checks issue 5's goals: SynFlow >= 2x faster, FORCE and Iter-SNIP >= 1.2x, SNIP and GraSP
no slower, peak memory no higher. ``--quick`` is a smoke run (a quarter-width ResNet18, few
steps, batches of 32). Each method first runs once on the model on both sides, untimed (one
step for the iterative ones); the one-shot methods then run ``--repeat`` interleaved times and
keep their best, the iterative ones once. On a shared machine ``--threads 1`` avoids the
stalls two-thread parallel regions suffer when other processes hold the cores.

Peak memory is the process's peak resident set above its level at the start of each call
(:class:`methods.CostMeter`). To make that honest for both sides, the script re-executes itself
with glibc's mmap threshold fixed (``MALLOC_MMAP_THRESHOLD_``), so every large tensor is returned
to the system when freed and one measurement cannot hide in memory the previous one left
behind, and it calls ``malloc_trim`` before every measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch import nn

import architectures
import methods
from methods import AllocationContext, AllocationFailed, CostMeter, PassCounter
from methods.schedules import step_counts

GOALS = {"synflow": 2.0, "force": 1.2, "itersnip": 1.2, "snip": 1.0, "grasp": 1.0}
Masks = list[torch.Tensor]


# ------------------------------------------------------------------------------------------
# Data: one generator, so a fresh iterator per step and one long iterator see the same batches
# ------------------------------------------------------------------------------------------
def random_context(seed: int, batch: int, batches_per_step: int = 1) -> AllocationContext:
    """An endless stream of random CIFAR-shaped batches; every new iterator continues it.

    ``batches_per_step`` is CIFAR-10's (Table 3: one batch per FORCE/Iter-SNIP step).
    """
    data = torch.Generator().manual_seed(seed)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            x = torch.randn(batch, 3, 32, 32, generator=data)
            yield x, torch.randint(0, 10, (batch,), generator=data)

    return AllocationContext(batches=batches, generator=torch.Generator().manual_seed(seed),
                             input_shape=(3, 32, 32), num_classes=10,
                             batches_per_step=batches_per_step)


# ------------------------------------------------------------------------------------------
# The straightforward way
# ------------------------------------------------------------------------------------------
def prunable(model: nn.Module) -> list[torch.Tensor]:
    """The prunable weights, by the one rule (``architectures.prunable_layers``)."""
    return [layer.weight for layer in architectures.prunable_layers(model)]


def threshold_masks(scores: Masks, k: int, alive: Masks | None = None) -> Masks:
    """Concatenate every score, threshold at the global k-th largest (``kthvalue``), ties by
    flat index so that the count is exact (the reference's rule minus its tie bug)."""
    flat = torch.cat([s.reshape(-1) for s in scores])
    if alive is not None:
        flat[~torch.cat([a.reshape(-1) for a in alive])] = float("-inf")
    threshold = torch.kthvalue(flat, flat.numel() - k + 1).values
    keep = flat > threshold
    short = k - int(keep.sum())
    if short > 0:
        keep[torch.nonzero(flat == threshold).reshape(-1)[:short]] = True
    out, offset = [], 0
    for s in scores:
        out.append(keep[offset : offset + s.numel()].view(s.shape))
        offset += s.numel()
    return out


def straight_prune_set(context: AllocationContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = next(iter(context.batches()))
    examples = 10 * (context.num_classes or 10)
    while x.shape[0] < examples:
        x2, y2 = next(iter(context.batches()))
        x, y = torch.cat([x, x2]), torch.cat([y, y2])
    x, y = x[:examples], y[:examples]
    return list(zip(torch.split(x, 256), torch.split(y, 256)))


def straight_snip(model: nn.Module, k: int, context: AllocationContext, p: PassCounter) -> Masks:
    net = copy.deepcopy(model).eval()
    for x, y in straight_prune_set(context):
        F.cross_entropy(net(x), y).backward()
        p.forward += 1
        p.backward += 1
    return threshold_masks([(w.grad * w).detach().abs() for w in prunable(net)], k)


def straight_grasp(model: nn.Module, k: int, context: AllocationContext, p: PassCounter) -> Masks:
    net = copy.deepcopy(model).eval()
    weights = prunable(net)
    data = straight_prune_set(context)
    g = None
    for x, y in data:
        grads = torch.autograd.grad(F.cross_entropy(net(x) / 200, y), weights)
        g = list(grads) if g is None else [a + b for a, b in zip(g, grads)]
        p.forward += 1
        p.backward += 1
    for x, y in data:
        grads = torch.autograd.grad(F.cross_entropy(net(x) / 200, y), weights, create_graph=True)
        sum((a * b).sum() for a, b in zip(grads, g)).backward()
        p.forward += 1
        p.backward += 2
    return threshold_masks([(w.grad * w).detach() for w in weights], k)


def straight_synflow(
    model: nn.Module, k: int, context: AllocationContext, p: PassCounter, steps: int,
    density: float,
) -> Masks:
    total = sum(w.numel() for w in prunable(model))
    masks = [torch.ones_like(w, dtype=torch.bool) for w in prunable(model)]
    for step, k_t in enumerate(step_counts(density, steps, total), start=1):
        net = copy.deepcopy(model).double().eval()  # a full copy per step
        with torch.no_grad():
            for tensor in net.state_dict().values():
                if tensor.is_floating_point():
                    tensor.abs_()
            for w, m in zip(prunable(net), masks):
                w.mul_(m)
        ones = torch.ones(1, *context.input_shape, dtype=torch.float64)
        net(ones).sum().backward()
        p.forward += 1
        p.backward += 1
        scores = [(w.grad * w).detach().abs() for w in prunable(net)]
        positive = sum(int((s[m] > 0).sum()) for s, m in zip(scores, masks))
        if positive == 0 or (step == steps and positive < k_t):
            raise AllocationFailed(f"step {step}: {positive} positive scores")
        masks = threshold_masks(scores, k_t, masks)
        del net, scores
    return masks


def straight_iterative(
    model: nn.Module, k: int, context: AllocationContext, p: PassCounter, steps: int,
    density: float, force: bool,
) -> Masks:
    total = sum(w.numel() for w in prunable(model))
    dense = [w.detach() for w in prunable(model)]
    masks: Masks | None = None
    nb = context.batches_per_step
    for step, k_t in enumerate(step_counts(density, steps, total), start=1):
        net = copy.deepcopy(model).train()  # a fresh dense copy per step
        if masks is not None:
            with torch.no_grad():
                for w, m in zip(prunable(net), masks):
                    w.mul_(m)
        for _ in range(nb):
            x, y = next(iter(context.batches()))  # a fresh iterator per batch
            F.nll_loss(net(x), y).backward()
            p.forward += 1
            p.backward += 1
        grads = [w.grad / nb if nb > 1 else w.grad for w in prunable(net)]
        if force:
            scores = [(w0 * g).abs() for w0, g in zip(dense, grads)]
        else:
            scores = [(w * g).detach().abs() for w, g in zip(prunable(net), grads)]
        alive = None if (force or masks is None) else masks
        positive = sum(int((s[a] > 0).sum()) if a is not None else int((s > 0).sum())
                       for s, a in zip(scores, alive or [None] * len(scores)))
        removed = masks is not None and not all(bool(m.all()) for m in masks)
        if positive == 0 or (positive < k_t and (step == steps or (removed and not force))):
            raise AllocationFailed(f"step {step}: {positive} positive scores")
        if positive < k_t:  # the reference keeps everything: FORCE restarts from the dense
            if force:       # weights; Iter-SNIP, nothing removed yet, removes nothing
                masks = None
            continue
        masks = threshold_masks(scores, k_t, alive)
        del net, grads, scores
    assert masks is not None
    return masks


# ------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    peak: int
    forward: int
    backward: int
    masks: Masks | None
    failure: str | None = None


def release_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_fast(name: str, options: dict, model: nn.Module, density: float, batch: int) -> Run:
    release_memory()
    method = methods.get(name, **options)
    try:
        allocation = method.allocate(model, density, context=random_context(0, batch))
    except AllocationFailed as failure:
        return Run(0, 0, 0, 0, None, failure.reason)
    cost = allocation.cost
    return Run(cost.seconds, cost.peak_bytes, cost.forward_passes, cost.backward_passes,
               list(allocation.masks.values()))


def run_straight(
    fn: Callable[..., Masks], model: nn.Module, k: int, batch: int, **kwargs: object
) -> Run:
    release_memory()
    passes = PassCounter()
    try:
        with CostMeter("cpu") as meter:
            masks = fn(model, k, random_context(0, batch), passes, **kwargs)
    except AllocationFailed as failure:
        return Run(0, 0, 0, 0, None, failure.reason)
    return Run(meter.seconds, meter.peak_bytes, passes.forward, passes.backward,
               [m.cpu() for m in masks])


def best(runs: list[Run]) -> Run:
    """The fastest run, with the lowest peak of all (repeats only remove interference)."""
    fastest = min(runs, key=lambda r: r.seconds)
    return Run(fastest.seconds, min(r.peak for r in runs), fastest.forward, fastest.backward,
               fastest.masks, fastest.failure)


def same_masks(a: Run, b: Run) -> bool:
    if a.masks is None or b.masks is None:
        return a.failure is not None and b.failure is not None
    return all(torch.equal(x, y) for x, y in zip(a.masks, b.masks, strict=True))


def straight_impls(
    name: str, steps: dict[str, int], d: float
) -> tuple[Callable[..., Masks], dict]:
    """The straightforward implementation of ``name`` and its keyword arguments."""
    return {
        "snip": (straight_snip, {}),
        "grasp": (straight_grasp, {}),
        "synflow": (straight_synflow, {"steps": steps["synflow"], "density": d}),
        "force": (straight_iterative, {"steps": steps["force"], "density": d, "force": True}),
        "itersnip": (straight_iterative,
                     {"steps": steps["itersnip"], "density": d, "force": False}),
    }[name]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small model, few steps")
    parser.add_argument("--archs", default=None, help="comma-separated (default resnet18,vgg19)")
    parser.add_argument("--methods", default="snip,grasp,synflow,force,itersnip")
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2,
                        help="interleaved runs of the one-shot methods (SNIP, GraSP); best kept")
    args = parser.parse_args()
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:  # see the module docstring
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if args.threads:
        torch.set_num_threads(args.threads)
    archs = (args.archs or ("resnet18_w16" if args.quick else "resnet18,vgg19")).split(",")
    archs = [a for a in archs if a in architectures.available()]
    steps = {"synflow": 10, "force": 4, "itersnip": 4} if args.quick else {
        "synflow": 100, "force": 60, "itersnip": 60}
    batch = 32 if args.quick else 128
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, density "
          f"{args.density}, batch {batch}, steps {steps}")
    header = (f"{'method':9} {'arch':13} {'fast s':>8} {'ref s':>8} {'speedup':>8} {'goal':>5} "
              f"{'passes f/b (fast|ref)':>22} {'peak MB fast':>12} {'ref':>7}  masks")
    print(header)
    misses = 0
    different: list[str] = []
    for arch in archs:
        model = architectures.build(arch, 10, input_shape=(3, 32, 32), seed=0)
        total = architectures.count_prunable(model)
        d = args.density
        k = methods.target_count(d, total)
        with torch.no_grad():
            model.eval()(torch.zeros(2, 3, 32, 32))  # warm up kernels before any timing
        model.train()
        for name in args.methods.split(","):
            options = {"steps": steps[name]} if name in steps else {}
            fn, kwargs = straight_impls(name, steps, d)
            # Warm-up on this model (one step for the iterative methods), both sides, untimed:
            # the measured runs then start from the same state (code paged in, allocator warm).
            short = {n: 1 for n in steps}
            run_fast(name, {"steps": 1} if name in steps else {}, model, d, batch)
            warm_fn, warm_kwargs = straight_impls(name, short, d)
            run_straight(warm_fn, model, k, batch, **warm_kwargs)
            fast_runs, ref_runs = [], []
            for _ in range(args.repeat if name not in steps else 1):  # interleaved pairs
                fast_runs.append(run_fast(name, options, model, d, batch))
                ref_runs.append(run_straight(fn, model, k, batch, **kwargs))
            fast, ref = best(fast_runs), best(ref_runs)
            identical = same_masks(fast, ref)
            if fast.failure or ref.failure:
                print(f"{name:9} {arch:13} failed: fast {fast.failure!r}, ref {ref.failure!r}")
                misses += int(not identical)
                continue
            speedup = ref.seconds / fast.seconds
            goal = GOALS[name]
            ok = speedup >= goal and fast.peak <= ref.peak and identical
            misses += int(not ok)
            passes = f"{fast.forward}/{fast.backward} | {ref.forward}/{ref.backward}"
            print(f"{name:9} {arch:13} {fast.seconds:8.2f} {ref.seconds:8.2f} {speedup:7.2f}x "
                  f"{goal:4.1f}x {passes:>22} {fast.peak / 2**20:12.1f} {ref.peak / 2**20:7.1f}  "
                  f"{'identical' if identical else 'DIFFERENT'}  "
                  f"{'PASS' if ok else 'MISS'}"
                  + ("" if speedup >= goal else " (time)")
                  + ("" if fast.peak <= ref.peak else " (memory)"), flush=True)
            if not identical:
                different.append(f"{name} on {arch}")
    print(f"{'all goals met' if misses == 0 else f'{misses} goal(s) missed'}")
    assert not different, f"masks differ from the straightforward way: {different}"
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"total {time.perf_counter() - start:.0f} s")
    sys.exit(code)
