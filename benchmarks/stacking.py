"""Stacked training against one run at a time and two workers: the same grid, side by side.

    python benchmarks/stacking.py                      # both grids, every mode
    python benchmarks/stacking.py --grids main --quick # a slice, for a smoke test

Each mode runs ``bench run`` in a fresh process, database and runs folder, with nothing else
on the machine (run it alone). Grids:

- ``main``: the README's main job (``--methods all --densities grid`` on digits, the MLP);
- ``lenet5``: LeNet-5 on Fashion-MNIST, EPL at the 10 grid densities x 3 seeds (30 runs), 2
  epochs of 5,000 images.

Modes: ``one at a time`` (``--stack off``), ``--workers 2`` (``--stack off``), ``stack auto``
(the default) and, on networks where ``auto`` does not stack, ``stack 10`` (forced, to show
why). The table prints each wall time and its speed-up over one at a time, and the largest
difference in any cell of the accuracy table against one at a time (in points).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRIDS = {
    "main": ["--methods", "all", "--densities", "grid"],
    "lenet5": [
        "--methods", "epl", "--densities", "grid", "--seeds", "0", "1", "2",
        "--archs", "lenet5", "--datasets", "fashion-mnist",
        "--epochs", "2", "--train-subset", "5000",
    ],
}  # fmt: skip
QUICK = {
    "main": [
        "--methods", "epl", "snip", "dctps", "--densities", "0.1", "0.01", "--seeds", "0", "1",
    ],
    "lenet5": [
        "--methods", "epl", "--densities", "0.1", "0.01", "--seeds", "0", "1",
        "--archs", "lenet5", "--datasets", "fashion-mnist",
        "--epochs", "1", "--train-subset", "1000",
    ],
}  # fmt: skip
MODES = {
    "one at a time": ["--stack", "off"],
    "--workers 2": ["--stack", "off", "--workers", "2"],
    "stack auto": ["--stack", "auto"],
    "stack 10": ["--stack", "10"],
}


def run_mode(grid: list[str], mode: list[str]) -> tuple[float, dict]:
    """Wall seconds of ``bench run`` and its accuracy table ``{(method, density): mean %}``."""
    with tempfile.TemporaryDirectory() as folder:
        db = f"sqlite:///{Path(folder) / 'bench.db'}"
        args = [*grid, *mode, "--db", db, "--runs-dir", str(Path(folder) / "runs")]
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bench.cli", "run", *args, "--no-progress"],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        seconds = time.perf_counter() - start
        import storage

        frame = storage.runs(storage.open_db(db))
        table = frame.groupby(["method", "density"])["test_acc"].mean().mul(100).to_dict()
        return seconds, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--quick", action="store_true", help="a small slice of each grid")
    args = parser.parse_args()
    print(f"{'grid':8s} {'mode':15s} {'seconds':>9s} {'speed-up':>9s} {'max cell diff':>14s}")
    for name in args.grids:
        grid = (QUICK if args.quick else GRIDS)[name]
        base: tuple[float, dict] | None = None
        for mode in args.modes:
            seconds, table = run_mode(grid, MODES[mode])
            if base is None:
                base = (seconds, table)
            diff = max(abs(table[k] - base[1][k]) for k in base[1])
            print(
                f"{name:8s} {mode:15s} {seconds:9.1f} {base[0] / seconds:8.2f}x {diff:13.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
