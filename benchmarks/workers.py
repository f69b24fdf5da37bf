"""Grid wall time with 1 worker process versus N, side by side (issue 7: >= 1.7x with 2 on 2 cores).

Each setting runs the same grid from scratch (fresh SQLite file and checkpoint directory)
through :func:`bench.workers.run_parallel`, so both pay the same process start-up and every
worker has the same number of torch threads (1 by default): the ratio measures how well the
claims spread a grid over processes, not how torch threads scale.

On a shared machine other processes take CPU too, so the benchmark first measures the
machine's own ceiling: the same fixed torch work done twice in one process, versus once in each
of two processes at the same time. A workers speed-up close to that ceiling means the claims
cost nothing; the ceiling itself is what the machine had to give at that moment.

    python benchmarks/workers.py                      # small_cnn, 11 runs, 8 epochs, 1 vs 2
    taskset -c 0,1 python benchmarks/workers.py       # pinned to two cores
    python benchmarks/workers.py --workers 1,2,4 --arch mlp --epochs 15
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import torch

import storage
from bench.runner import ClaimPolicy, expand_grid
from bench.workers import run_parallel

DENSITIES = [0.1, 0.05, 0.02, 0.01, 0.005]


def _fixed_work() -> None:
    torch.set_num_threads(1)
    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    for _ in range(4000):
        a = torch.tanh(a @ a)


def ceiling(processes: int) -> float:
    """How much faster ``processes`` copies of a fixed work run side by side than in a row."""
    start = time.perf_counter()
    for _ in range(processes):
        _fixed_work()
    in_a_row = time.perf_counter() - start
    context = multiprocessing.get_context("fork")
    start = time.perf_counter()
    running = [context.Process(target=_fixed_work) for _ in range(processes)]
    for process in running:
        process.start()
    for process in running:
        process.join()
    return in_a_row / (time.perf_counter() - start)


def measure(workers: int, threads: int, arch: str, epochs: int, root: Path) -> tuple[float, int]:
    """Wall seconds to run the grid with ``workers`` processes; and the number of runs."""
    configs = expand_grid(
        archs=[arch],
        datasets=["digits"],
        method_specs=[("epl", {}), ("random", {})],
        densities=DENSITIES,
        seeds=[0],
        epochs=epochs,
    )
    directory = root / f"w{workers}"
    directory.mkdir()
    engine = storage.open_db(f"sqlite:///{directory / 'bench.db'}")
    start = time.perf_counter()
    outcomes = run_parallel(
        configs,
        engine,
        directory / "runs",
        workers=workers,
        threads=threads,
        policy=ClaimPolicy(poll=0.2),
        show_progress=False,
        echo=lambda line: None,
    )
    seconds = time.perf_counter() - start
    assert all(o.status == "finished" for o in outcomes), [o.status for o in outcomes]
    return seconds, len(outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (first = base)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--arch", default="small_cnn", help="model (default small_cnn)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per run")
    args = parser.parse_args()
    counts = [int(v) for v in args.workers.split(",")]
    cpus = len(os.sched_getaffinity(0))
    print(f"grid: {args.arch}/digits, dense + epl, random x {len(DENSITIES)} densities, "
          f"{args.epochs} epochs; {args.threads} torch thread(s) per worker; {cpus} CPUs "
          f"available")  # fmt: skip
    for n in counts[1:]:
        print(f"machine ceiling now: fixed work in {n} processes runs {ceiling(n):.2f}x faster")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in counts:
            load = os.getloadavg()[0]
            seconds, runs = measure(workers, args.threads, args.arch, args.epochs, Path(tmp))
            rows.append((workers, seconds, runs, load, os.getloadavg()[0]))
    base = rows[0][1]
    # The load average says how much of the CPUs other processes took meanwhile (it counts
    # our own workers too): on a shared machine the speed-up is bounded by what is left.
    print(f"{'workers':>7} {'runs':>5} {'wall s':>8} {'runs/min':>9} {'speed-up':>9}  load")
    for workers, seconds, runs, before, after in rows:
        print(
            f"{workers:>7} {runs:>5} {seconds:>8.1f} {60 * runs / seconds:>9.1f} "
            f"{base / seconds:>8.2f}x  {before:.1f} -> {after:.1f}"
        )


if __name__ == "__main__":
    main()
