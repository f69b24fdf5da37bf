"""``bench run`` on a busy CPU: each thread setting beside the same competing load, side by side.

    python benchmarks/busy.py                 # idle, one competing process, a mixed load
    python benchmarks/busy.py --loads idle mixed --runs 5

The grid is a small slice of the README's main job (digits, the MLP, 50 epochs): the dense
baseline and EPL at a few densities, run by ``bench run`` in a fresh process and folder each
time. Settings:

- ``torch default``: what paibench did before: torch's threads (all cores) and OpenMP's own wait
  policy (its threads spin while they wait);
- ``--threads 1``: one thread per run;
- ``paibench default``: no flag: OpenMP's passive wait policy and, per run, the cores that are
  free when it starts (bench/threads.py).

Loads: ``idle``; ``one``: one competing process (a two-thread torch loop of small matrix
products, as a test or a training process); ``mixed``: two such processes and one
single-threaded pure-Python loop, the kind of load under which the default collapsed.
The fair share of a run beside ``t`` busy competing threads (the load average they make) on
``c`` cores is ``max(1, (t + 1) / c)`` times its idle time; the table prints each time and its
ratio to that fair share.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {
    "torch default": (["--threads", str(os.cpu_count() or 1)], {"OMP_WAIT_POLICY": ""}),
    "--threads 1": (["--threads", "1"], {}),
    "paibench default": ([], {}),
}


def _torch_loop(stop: float) -> None:
    import torch

    torch.set_num_threads(2)
    a = torch.randn(96, 96)
    while time.time() < stop:
        for _ in range(200):
            a = torch.tanh(a @ a)


def _python_loop(stop: float) -> None:
    x = 0
    while time.time() < stop:
        x = (x * 31 + 7) % 1_000_003


LOADS = {
    "idle": [],
    "one": [_torch_loop],
    "mixed": [_torch_loop, _torch_loop, _python_loop],
}
THREADS = {_torch_loop: 2, _python_loop: 1}  # busy threads of each competing process


def run_grid(runs: int, setting: str) -> float:
    """Seconds for ``bench run`` of the grid, from a fresh folder."""
    flags, env = SETTINGS[setting]
    densities = ",".join(str(d) for d in (0.1, 0.05, 0.02, 0.01, 0.005)[: max(1, runs - 1)])
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "bench.cli", "run", "--methods", "epl", "--densities",
                   densities, "--no-progress", *flags]
        start = time.perf_counter()
        subprocess.run(command, cwd=folder, env={**os.environ, **env}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def measure(load: str, runs: int, settings: list[str]) -> dict[str, float]:
    """Each setting's time beside ``load`` (the load restarted for each setting)."""
    times = {}
    for setting in settings:
        stop = time.time() + 3600
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=f, args=(stop,), daemon=True) for f in LOADS[load]]
        for worker in workers:
            worker.start()
        time.sleep(2 if workers else 0)  # let the load settle
        try:
            times[setting] = run_grid(runs, setting)
        finally:
            for worker in workers:
                worker.terminate()
                worker.join()
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", nargs="+", default=list(LOADS), choices=list(LOADS))
    parser.add_argument("--runs", type=int, default=4, help="runs in the grid (dense + EPL)")
    args = parser.parse_args(argv)
    settings = list(SETTINGS)
    cores = os.cpu_count() or 1
    idle = measure("idle", args.runs, settings)
    print(f"{args.runs}-run digits grid, {cores} cores; seconds (ratio to the fair share)")
    print(f"{'load':8s}" + "".join(f"{s:>24s}" for s in settings))
    for load in args.loads:
        times = idle if load == "idle" else measure(load, args.runs, settings)
        share = max(1.0, (sum(THREADS[f] for f in LOADS[load]) + 1) / cores)
        cells = [f"{times[s]:8.1f} s ({times[s] / (idle[s] * share):4.2f}x)" for s in settings]
        print(f"{load:8s}" + "".join(f"{c:>24s}" for c in cells), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
