"""Every method's allocation on one device: seconds, peak memory, passes, and CPU agreement.

    python benchmarks/device_allocation.py --device cuda          # the device check's part 1
    python benchmarks/device_allocation.py --device cpu --quick   # its CPU dry run

For each registered method (the dense baseline aside) on the CIFAR ``resnet18`` (3x32x32, 10
classes, seed 0; ``--quick``: ``resnet18_w16``, batches of 32 and few steps): random batches of
128 from a fixed generator (CIFAR-10's Table 3: one batch per FORCE/Iter-SNIP step), density
0.01, Table 3's steps (SynFlow 100, FORCE and Iter-SNIP 60), the :class:`AllocationContext` on
``--device``, as ``bench run`` allocates. Each method first runs once untimed (one step for the
iterative ones), so that kernels are loaded and the allocator is warm; the timed run follows.
Seconds and peak memory are :class:`methods.CostMeter`'s (CUDA: synchronised, and
``torch.cuda.max_memory_allocated`` above the start; CPU: the resident set's high-water mark).

Beside each: the CPU seconds of ``docs/performance.md`` (2 cores, torch 2.14.1, the harness
side of ``benchmarks/allocation.py``), their ratio and issue 14's goal (SynFlow and FORCE under
1/10 of their CPU time on a GPU). ``--compare-cpu METHODS`` also allocates those methods on the
CPU in the same process and prints the share of mask entries that agree (issue 14: exactly for
random/EPL/EPF, at least 99.9% for saliency methods). ``--json FILE`` writes the rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# cuBLAS's deterministic mode needs its workspace fixed before CUDA starts (as bench sets it).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch

import architectures
import methods
from methods import AllocationContext, AllocationFailed

# docs/performance.md, "Allocation cost per method": harness seconds on resnet18, 2-core CPU.
CPU_SECONDS = {"snip": 1.81, "grasp": 7.77, "synflow": 19.39, "force": 138.60, "itersnip": 139.67}
GOALS = {"synflow": 0.1, "force": 0.1}  # at most this share of the CPU time
STEPS = {"synflow": 100, "force": 60, "itersnip": 60}
QUICK_STEPS = {"synflow": 10, "force": 4, "itersnip": 4}
SHAPE = (3, 32, 32)


def context(device: torch.device, batch: int, seed: int = 0) -> AllocationContext:
    """An endless stream of random CIFAR-shaped batches from one generator, on ``device``."""
    data = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            x = torch.randn(batch, *SHAPE, generator=data)
            yield x, torch.randint(0, 10, (batch,), generator=data)

    return AllocationContext(
        batches=batches,
        generator=torch.Generator().manual_seed(seed),
        input_shape=SHAPE,
        num_classes=10,
        device=device,
    )


def allocate(name: str, options: dict, model, density: float, device, batch: int):
    """The allocation, or the failure's reason."""
    try:
        return methods.get(name, **options).allocate(
            model, density, context=context(device, batch)
        )
    except AllocationFailed as failure:
        return failure.reason


def digest(masks: dict[str, torch.Tensor]) -> str:
    hashed = hashlib.sha256()
    for name in sorted(masks):
        hashed.update(name.encode())
        hashed.update(masks[name].to("cpu", torch.bool).numpy().tobytes())
    return hashed.hexdigest()[:12]


def agreement(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    same = sum(int((a[k].cpu() == b[k].cpu()).sum()) for k in a)
    return same / sum(m.numel() for m in a.values())


def save(path: Path | None, rows: list[dict]) -> None:
    """Write the rows so far: a run cut short keeps what it measured."""
    if path is not None:
        path.write_text(json.dumps(rows, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cpu, cuda or cuda:N (default cuda)")
    parser.add_argument("--quick", action="store_true", help="resnet18_w16, batch 32, few steps")
    parser.add_argument("--arch", default=None, help="default resnet18 (--quick: resnet18_w16)")
    parser.add_argument("--methods", default=None, help="comma-separated (default: all but dense)")
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument("--compare-cpu", default="", help="methods also allocated on the CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is visible")
    arch = args.arch or ("resnet18_w16" if args.quick else "resnet18")
    steps = QUICK_STEPS if args.quick else STEPS
    batch = 32 if args.quick else 128
    names = args.methods.split(",") if args.methods else [
        name for name in methods.available() if name != "dense"
    ]
    compare = {name for name in args.compare_cpu.split(",") if name}
    model = architectures.build(arch, 10, input_shape=SHAPE, seed=0)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, {where}, {torch.get_num_threads()} threads; {arch}, "
          f"density {args.density}, batch {batch}, steps {steps}")
    print(f"{'method':9} {'s':>8} {'peak MB':>9} {'f/b':>9} {'CPU s':>7} {'ratio':>6}  "
          f"{'goal':13} {'masks':12} {'vs CPU':>8}")
    rows = []
    for name in names:
        options = {"steps": steps[name]} if name in steps else {}
        allocate(name, {"steps": 1} if name in steps else {}, model, args.density, device, batch)
        result = allocate(name, options, model, args.density, device, batch)
        row: dict = {"method": name, "arch": arch, "device": str(device), "steps": options}
        if isinstance(result, str):
            row["failure"] = result
            print(f"{name:9} failed: {result}")
            rows.append(row)
            save(args.json, rows)
            continue
        cost = result.cost
        row |= {"seconds": cost.seconds, "peak_mb": cost.peak_bytes / 2**20,
                "forward": cost.forward_passes, "backward": cost.backward_passes,
                "memory_source": cost.memory_source, "kept": result.kept,
                "masks": digest(result.masks)}
        cpu_seconds = CPU_SECONDS.get(name) if arch == "resnet18" and not args.quick else None
        ratio = cost.seconds / cpu_seconds if cpu_seconds else None
        goal = GOALS.get(name)
        verdict = ""
        if goal is not None:
            met = ratio is not None and ratio <= goal
            verdict = f"<= {goal:g}x: " + ("met" if met else "n/a" if ratio is None else "missed")
        row |= {"cpu_seconds": cpu_seconds, "ratio": ratio, "goal": goal, "verdict": verdict}
        if name in compare:
            on_cpu = allocate(name, options, model, args.density, torch.device("cpu"), batch)
            row["cpu_agreement"] = (
                agreement(result.masks, on_cpu.masks) if not isinstance(on_cpu, str) else None
            )
        share = row.get("cpu_agreement")
        print(f"{name:9} {cost.seconds:8.3f} {row['peak_mb']:9.1f} "
              f"{cost.forward_passes:>4}/{cost.backward_passes:<4} "
              f"{cpu_seconds or float('nan'):7.2f} {ratio or float('nan'):6.3f}  {verdict:13} "
              f"{row['masks']:12} {'' if share is None else f'{share:.5f}':>8}", flush=True)
        rows.append(row)
        save(args.json, rows)
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"total {time.perf_counter() - start:.0f} s")
    sys.exit(code)
