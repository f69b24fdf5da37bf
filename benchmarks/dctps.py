"""DCTpS layer cost against a plain layer: time, peak memory and stored bytes, side by side.

    python benchmarks/dctps.py [--quick] [--density 0.01] [--rounds N]

For the layer shapes of CIFAR ResNet50 and VGG19 (batch 128, or 16 with ``--quick``), times one
forward + backward (input and parameter gradients) of the plain ``nn.Conv2d``/``nn.Linear`` and of
each DCTpS impl in interleaved rounds (the minimum per variant: the cost without interference
from other processes), measures the peak memory of one step from the profiler's allocation
events, and counts the bytes each layer stores. Then checks the goals of issue 6 and prints
PASS/MISS with margins. On a shared machine, ``--threads 1`` avoids the scheduling stalls that
two-thread parallel regions suffer when other processes hold the cores.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from architectures.dctps import IMPLS, DCTpSConv2d, DCTpSLinear

VARIANTS = ("plain", *IMPLS)


@dataclass(frozen=True)
class Shape:
    """A conv ``in -> out`` (``kernel``, ``stride``) on a ``size``-pixel map, or a Linear."""

    label: str
    cin: int
    cout: int
    kernel: int = 0  # 0: Linear
    stride: int = 1
    size: int = 1

    def build(self) -> nn.Module:
        if not self.kernel:
            return nn.Linear(self.cin, self.cout)
        return nn.Conv2d(
            self.cin, self.cout, self.kernel, self.stride, self.kernel // 2, bias=False
        )

    def input(self, batch: int) -> torch.Tensor:
        if not self.kernel:
            return torch.randn(batch, self.cin)
        return torch.randn(batch, self.cin, self.size, self.size)


# CIFAR ResNet50 (bottleneck stages at 32/16/8/4 pixels) and VGG19 (3x3 convs at 32..2 pixels).
SHAPES = [
    Shape("3x3 64 @32 (R50, VGG)", 64, 64, 3, 1, 32),
    Shape("3x3 128 @16 (R50, VGG)", 128, 128, 3, 1, 16),
    Shape("3x3 128 s2 @32 (R50)", 128, 128, 3, 2, 32),
    Shape("3x3 256 @8 (R50, VGG)", 256, 256, 3, 1, 8),
    Shape("3x3 512 @4 (R50, VGG)", 512, 512, 3, 1, 4),
    Shape("3x3 512 @2 (VGG)", 512, 512, 3, 1, 2),
    Shape("1x1 64->256 @32 (R50)", 64, 256, 1, 1, 32),
    Shape("1x1 256->64 @32 (R50)", 256, 64, 1, 1, 32),
    Shape("1x1 1024->256 @8 (R50)", 1024, 256, 1, 1, 8),
    Shape("1x1 512->2048 @4 (R50)", 512, 2048, 1, 1, 4),
    Shape("1x1 1024->2048 s2 @8 (R50)", 1024, 2048, 1, 2, 8),
    Shape("Linear 2048->10 (R50)", 2048, 10),
    Shape("Linear 512->10 (VGG)", 512, 10),
]


@dataclass
class Result:
    """Measurements of one shape: fastest seconds, peak bytes and stored bytes per variant."""

    shape: Shape
    seconds: dict[str, float] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)

    def ratio(self, variant: str) -> float:
        return self.seconds[variant] / self.seconds["plain"]

    def memory_ratio(self, variant: str) -> float:
        return self.peak[variant] / self.peak["plain"]


def make_variants(shape: Shape, density: float) -> dict[str, nn.Module]:
    """The plain layer and a DCTpS layer per impl on one random support of the given density."""
    base = shape.build()
    numel = base.weight.numel()
    mask = torch.zeros(numel, dtype=torch.bool)
    kept = torch.randperm(numel, generator=torch.Generator().manual_seed(0))[
        : round(density * numel)
    ]
    mask[kept] = True
    mask = mask.reshape(base.weight.shape)
    kind = DCTpSConv2d if shape.kernel else DCTpSLinear
    layers: dict[str, nn.Module] = {"plain": base}
    for impl in IMPLS:
        layer = kind(base, mask, impl=impl)  # type: ignore[arg-type]
        with torch.no_grad():
            layer.values.normal_(0, 0.01)
        layers[impl] = layer
    return layers


def step_fn(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    """One forward + backward with input and parameter gradients, as inside a network."""

    def step() -> None:
        layer(x).backward(grad)

    return step


def clear_grads(layer: nn.Module, x: torch.Tensor) -> None:
    """Drop accumulated gradients, so that every step allocates its own (outside measurements)."""
    for param in layer.parameters():
        param.grad = None
    x.grad = None


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's native start/stop lines)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_bytes(step: Callable[[], None]) -> int:
    """Peak of the bytes allocated minus freed during ``step`` (profiler memory events)."""
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        peak = max(peak, running)
    return peak


def resident_bytes(layer: nn.Module) -> int:
    """Parameters and buffers the layer holds in memory (D, the factored transform, ...)."""
    tensors = [*layer.parameters(), *layer.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def stored_bytes(layer: nn.Module) -> int:
    """Bytes of the tensors in the layer's ``state_dict`` (what a checkpoint holds)."""
    return sum(t.numel() * t.element_size() for t in layer.state_dict().values())


def measure(shape: Shape, batch: int, density: float, rounds: int) -> Result:
    """Interleaved timing rounds, then one profiled step per variant."""
    layers = make_variants(shape, density)
    x = shape.input(batch).requires_grad_()
    with torch.no_grad():
        grad = torch.randn_like(layers["plain"](x))
    steps = {name: step_fn(layer, x, grad) for name, layer in layers.items()}
    for name, step in steps.items():  # warm-up (allocator, one-time kernels)
        clear_grads(layers[name], x)
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            clear_grads(layers[name], x)
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    result = Result(shape)
    for name, layer in layers.items():
        result.seconds[name] = min(times[name])
        resident = resident_bytes(layer) + x.numel() * x.element_size()
        clear_grads(layer, x)
        result.peak[name] = resident + peak_bytes(steps[name])
        result.stored[name] = stored_bytes(layer)
    return result


def check(label: str, value: float, limit: float, smaller: bool = True) -> str:
    """``PASS``/``MISS`` of ``value <= limit`` (or ``< limit``), with the margin in percent."""
    ok = value <= limit if smaller else value < limit
    margin = (limit - value) / limit * 100
    word = "PASS" if ok else "MISS"
    relation = "<=" if smaller else "<"
    return f"{word}  {label}: {value:.2f}x (goal {relation} {limit:.2f}x, margin {margin:+.0f}%)"


def goals(results: list[Result], density: float) -> list[str]:
    """Issue 6's goals, one line per layer and goal."""
    lines = []
    for result in results:
        label = result.shape.label
        linear = not result.shape.kernel
        lines.append(check(f"dense time {label}", result.ratio("dense"), 1.6 if linear else 1.15))
        lines.append(check(f"dense peak memory {label}", result.memory_ratio("dense"), 1.2))
        if result.shape.kernel == 3 and result.shape.cin >= 256 and density <= 0.01:
            lines.append(
                check(f"factored time {label}", result.ratio("factored"), 1.0, smaller=False)
            )
    return lines


def table(results: list[Result]) -> list[str]:
    """Time and peak-memory ratios to the plain layer, and stored bytes."""
    header = (
        f"{'layer':28} {'plain ms':>9} "
        + " ".join(f"{'t ' + v:>11}" for v in IMPLS)
        + f" {'plain MiB':>10} "
        + " ".join(f"{'mem ' + v:>13}" for v in IMPLS)
        + f" {'plain KiB':>10} {'DCTpS KiB':>10} {'paper KiB':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        plain_bytes = r.stored["plain"]
        weight_bytes = r.shape.build().weight.numel() * 4
        lines.append(
            f"{r.shape.label:28} {r.seconds['plain'] * 1e3:9.1f} "
            + " ".join(f"{r.ratio(v):10.2f}x" for v in IMPLS)
            + f" {r.peak['plain'] / 2**20:10.1f} "
            + " ".join(f"{r.memory_ratio(v):12.2f}x" for v in IMPLS)
            + f" {plain_bytes / 1024:10.1f} {r.stored['dense'] / 1024:10.1f}"
            + f" {3 * weight_bytes / 1024:10.1f}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 16 instead of 128")
    parser.add_argument("--density", type=float, default=0.01, help="support density of S")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds (default 5, quick 3)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--only", default="", help="measure only layers whose label contains this")
    args = parser.parse_args(argv)
    batch = 16 if args.quick else 128
    rounds = args.rounds or (3 if args.quick else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"DCTpS layer benchmark: batch {batch}, density {args.density}, {rounds} rounds, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU"
    )
    print("time = forward + backward, fastest of the rounds, ratio to plain;")
    print("mem = peak bytes allocated during one step plus the layer's parameters and buffers and")
    print("the input, ratio to plain;")
    print("stored = state_dict bytes; paper = the reference code's D + dense S + float mask.\n")
    results = []
    for shape in [s for s in SHAPES if args.only in s.label]:
        results.append(measure(shape, batch, args.density, rounds))
        print(table(results)[-1] if len(results) > 1 else "\n".join(table(results)), flush=True)
    print("\nGoals (issue 6):")
    for line in goals(results, args.density):
        print("  " + line)


if __name__ == "__main__":
    main()
