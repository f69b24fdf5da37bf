"""The extra cost of Hyperplane Projection per training step, side by side with the plain
(masked) network and DCTpS: LeNet-5 on 1x28x28 batches of 64, Adam, densities 1% and 0.1%.

    python benchmarks/hyperplane.py
    python benchmarks/hyperplane.py --steps 30 --threads 1

Each setting allocates (random for the plain network), applies the allocation and times
``--steps`` optimizer steps after ``--warmup`` (forward, backward, Adam). Printed: ms per step,
its ratio to the plain network's at the same density, and the projection's bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import architectures
import methods

SETTINGS = (
    ("plain (random)", "random", {}),
    ("DCTpS", "dctps", {}),
    ("hyperplane dense", "hyperplane", {"projection": "dense"}),
    ("hyperplane sparse", "hyperplane", {"projection": "sparse"}),
    ("hyperplane fastfood", "hyperplane", {"projection": "fastfood"}),
)


def step_ms(method: str, options: dict, density: float, steps: int, warmup: int) -> tuple:
    """(ms per step, projection bytes or None) of one setting."""
    model = architectures.build("lenet5", 10, input_shape=(1, 28, 28), seed=0)
    context = methods.AllocationContext(generator=torch.Generator().manual_seed(0))
    allocation = methods.get(method, **options).allocate(model, density, context=context)
    net = allocation.apply(model)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (64,), generator=generator)
    for index in range(warmup + steps):
        if index == warmup:
            start = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return 1000 * (time.perf_counter() - start) / steps, allocation.info.get("projection_bytes")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"LeNet-5, batch 64, Adam; {args.steps} steps after {args.warmup}; "
          f"{torch.get_num_threads()} threads")
    print(f"{'density':>8} {'setting':22s} {'ms/step':>8} {'x plain':>8} {'projection':>12}")
    for density in (0.01, 0.001):
        plain = None
        for label, method, options in SETTINGS:
            ms, size = step_ms(method, options, density, args.steps, args.warmup)
            plain = plain or ms
            shown = f"{size / 2**20:.1f} MiB" if size is not None else "-"
            print(f"{density:>8g} {label:22s} {ms:8.2f} {ms / plain:8.2f} {shown:>12}", flush=True)


if __name__ == "__main__":
    main()
