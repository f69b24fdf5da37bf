"""Grid wall time with 1 worker process versus N, side by side (issue 7: >= 1.7x with 2 on 2 cores).

Each setting runs the same grid from scratch (fresh SQLite file and checkpoint directory)
through :func:`bench.scheduling.pool.run_grid` in a fresh process, so both pay the same start-up,
and every worker has the same number of torch threads (1 by default): the ratio measures how
well the claims spread a grid over processes, not how torch threads scale.

On a shared machine other processes take CPU too, so the benchmark first measures the
machine's own ceiling: the same fixed torch work done twice in one process, versus once in each
of two processes at the same time. A workers speed-up close to that ceiling means the claims
cost nothing; the ceiling itself is what the machine had to give at that moment.

    python benchmarks/workers.py                      # small_cnn, 44 runs, 8 epochs, 1 vs 2
    taskset -c 0,1 python benchmarks/workers.py       # pinned to two cores
    python benchmarks/workers.py --seeds 1            # 11 runs: start-up and the tail show
    python benchmarks/workers.py --workers 1,2,4 --arch mlp --epochs 15
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from sqlalchemy import select

import storage
from bench.grid import GridSpec
from bench.scheduling.pool import run_grid
from bench.settings import QueueSettings
from storage.schema import Run

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


@dataclass(frozen=True)
class Measurement:
    """One setting: wall seconds, runs done by each worker, load average before and after."""

    workers: int
    seconds: float
    runs_per_worker: list[int]
    load: tuple[float, float]


def measure(
    workers: int, threads: int, arch: str, epochs: int, seeds: int, root: Path
) -> Measurement:
    """Run the grid from scratch with ``workers`` processes."""
    configs = GridSpec(
        methods=("epl", "random"),
        densities=tuple(DENSITIES),
        seeds=tuple(range(seeds)),
        archs=(arch,),
        settings={"epochs": epochs},
    ).configs()
    directory = root / f"w{workers}"
    directory.mkdir()
    engine = storage.open_db(f"sqlite:///{directory / 'bench.db'}")
    load, start = os.getloadavg()[0], time.perf_counter()
    outcomes = run_grid(
        configs,
        engine,
        directory / "runs",
        workers=workers,
        threads=threads,
        settings=QueueSettings(poll=0.2),
        show_progress=False,
        echo=lambda line: None,
    )
    seconds = time.perf_counter() - start
    assert all(o.status == "finished" for o in outcomes), [o.status for o in outcomes]
    with engine.connect() as conn:
        holders = conn.execute(select(Run.worker)).scalars().all()
    # A holder is ``trial-N@host:pid``: count the runs of each worker process.
    per_pid = Counter(holder.rsplit(":", 1)[1] for holder in holders if holder)
    runs_per_worker = sorted(per_pid.values(), reverse=True)
    return Measurement(workers, seconds, runs_per_worker, (load, os.getloadavg()[0]))


def _run_and_send(queue, function, args) -> None:
    queue.put(function(*args))


def _in_fresh_process(function, *args):
    """``function(*args)`` in a newly spawned (non-daemon) process; its result."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run_and_send, args=(queue, function, args))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (first = base)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--arch", default="small_cnn", help="model (default small_cnn)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per run")
    parser.add_argument(
        "--seeds",
        type=int,
        default=4,
        help="seeds of the grid, 11 runs each (default 4: 44 runs, enough to amortise the "
        "workers' start-up and even out the last runs, as a real grid does)",
    )
    args = parser.parse_args()
    counts = [int(v) for v in args.workers.split(",")]
    cpus = len(os.sched_getaffinity(0))
    print(f"grid: {args.arch}/digits, dense + epl, random x {len(DENSITIES)} densities, "
          f"{args.seeds} seed(s), {args.epochs} epochs; {args.threads} torch thread(s) per "
          f"worker; {cpus} CPUs available")  # fmt: skip
    for n in counts[1:]:
        print(f"machine ceiling now: fixed work in {n} processes runs {ceiling(n):.2f}x faster")
    # Each setting runs in a fresh process, so each pays the start-up (the fork server's imports)
    # that a `bench run --workers N` pays.
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            _in_fresh_process(
                measure, n, args.threads, args.arch, args.epochs, args.seeds, Path(tmp)
            )
            for n in counts
        ]
    base = rows[0]
    # load: the 1-minute load average before -> after (our workers count too): on a shared
    # machine the speed-up is bounded by what the other processes leave (the ceiling above).
    print(f"{'workers':>7} {'wall s':>7} {'speed-up':>9} {'runs per worker':>16}  load")
    for row in rows:
        print(
            f"{row.workers:>7} {row.seconds:>7.1f} {base.seconds / row.seconds:>8.2f}x "
            f"{'/'.join(map(str, row.runs_per_worker)):>16}  {row.load[0]:.1f} -> {row.load[1]:.1f}"
        )


if __name__ == "__main__":
    main()
