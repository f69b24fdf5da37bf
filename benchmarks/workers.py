"""Grid wall time with 1 worker process versus N, side by side (issue 7: >= 1.7x with 2 on 2 cores).

Each setting runs the same grid from scratch (fresh SQLite file and checkpoint directory)
through :func:`bench.workers.run_parallel`, so both pay the same process start-up and every
worker has the same number of torch threads (1 by default): the ratio measures how well the
claims spread a grid over processes, not how torch threads scale.

    python benchmarks/workers.py                      # 11 runs, 5 epochs, 1 vs 2 workers
    taskset -c 0,1 python benchmarks/workers.py       # pinned to two cores
    python benchmarks/workers.py --workers 1,2,4 --epochs 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import storage
from bench.runner import ClaimPolicy, expand_grid
from bench.workers import run_parallel

DENSITIES = [0.1, 0.05, 0.02, 0.01, 0.005]


def measure(workers: int, threads: int, epochs: int, root: Path) -> tuple[float, int]:
    """Wall seconds to run the grid with ``workers`` processes; and the number of runs."""
    configs = expand_grid(
        archs=["mlp"],
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
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run")
    args = parser.parse_args()
    counts = [int(v) for v in args.workers.split(",")]
    cpus = len(os.sched_getaffinity(0))
    print(f"grid: mlp/digits, dense + epl, random x {len(DENSITIES)} densities, {args.epochs} "
          f"epochs; {args.threads} torch thread(s) per worker; {cpus} CPUs available")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in counts:
            seconds, runs = measure(workers, args.threads, args.epochs, Path(tmp))
            rows.append((workers, seconds, runs))
    base = rows[0][1]
    print(f"{'workers':>7} {'runs':>5} {'wall s':>8} {'runs/min':>9} {'speed-up':>9}")
    for workers, seconds, runs in rows:
        print(
            f"{workers:>7} {runs:>5} {seconds:>8.1f} {60 * runs / seconds:>9.1f} "
            f"{base / seconds:>8.2f}x"
        )


if __name__ == "__main__":
    main()
