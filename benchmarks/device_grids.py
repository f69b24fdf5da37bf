"""Grids through ``bench run`` on one device: runs per hour by workers, and repeated masks.

    python benchmarks/device_grids.py workers --accelerator gpu --data-dir .data --out OUT
    python benchmarks/device_grids.py repeat  --accelerator gpu --data-dir .data --out OUT

``workers`` (the device check's part 3): a LeNet-5 grid on Fashion-MNIST (``random`` over
``--densities`` x ``--seeds``, plus the dense baseline; 1 epoch of 5,000 images) from scratch
with each of ``--workers`` worker processes (``bench run --workers N --devices 0``: all on GPU
0), each into a fresh database. Runs per hour from the database (finished runs over the span
from the first run's start to the last one's end) and from the command's wall clock (start-up
included). Goal (issue 14): 4 workers >= 3x the runs per hour of one.

``stacked`` (part 5, issue 15): for LeNet-5 and ``resnet18_w16``, EPL over 10 densities x 3
seeds (30 runs plus the dense baselines), one worker, ``--stack off`` against ``--stack auto``
(on a GPU every network stacks). Goal: stacked >= 10x the runs per hour of one at a time.

``repeat`` (part 4): a two-epoch grid of every method on ``resnet18_w16`` on Fashion-MNIST at
density 0.01, seed 0, 5,000 images, run twice into two databases and runs folders. Checks that
every run finishes (every method finished at 0.01 on the CPU: docs/paper-mini.md and the CPU
dry run), that each config ends the same in both (status, reason), that ``bench query layers``
prints the same kept counts, and that the masks are equal bit for bit (a SHA-256 of the mask
buffers, or DCTpS's support indices, in each run's ``last.ckpt``). The trained weights and test
accuracies are compared too, for the record (determinism of training, not a goal).

Both write ``OUT/<part>.json``, the logs of every ``bench`` command under ``OUT/logs`` and a copy
of each results database under ``OUT/db``; checkpoints stay in ``--work`` (default
``/tmp/paibench-device-check``), out of what comes back.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = [sys.executable, "-m", "bench.cli"]
# This tree's packages first (before an installed paibench), in every worker process too.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
DENSITIES = ["0.1", "0.05", "0.02", "0.01", "0.005", "0.002", "0.001", "0.0005", "0.0002",
             "0.0001"]


DEADLINE = [float("inf")]  # time.monotonic() by which every bench command must have ended


def bench(
    args: list[str], log: Path, timeout: float, bounded: bool = True
) -> tuple[int, float, str]:
    """Run ``bench ARGS`` from the repository root; its exit code, seconds and stdout.

    Killed after ``timeout`` seconds or (when ``bounded``) at the deadline (exit 124), whichever
    comes first.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    if bounded:
        timeout = min(timeout, DEADLINE[0] - time.monotonic())
    if timeout < 5:
        log.write_text(f"$ bench {' '.join(args)}\n(not run: the part's time budget is spent)\n")
        return 124, 0.0, ""
    start = time.perf_counter()
    try:
        done = subprocess.run([*BENCH, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, env=ENV)
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        code, out = 124, expired.stdout or ""
        err = (expired.stderr or "") + f"\n(timed out after {timeout:.0f} s)"
        out, err = (x.decode() if isinstance(x, bytes) else x for x in (out, err))
    seconds = time.perf_counter() - start
    log.write_text(f"$ bench {' '.join(args)}\n(exit {code}, {seconds:.1f} s)\n{out}\n{err}")
    return code, seconds, out


def runs(db: Path) -> list[dict]:
    """Every run row of a results database (stdlib sqlite3: no SQLAlchemy needed to read it)."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM runs ORDER BY id")]


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def common(args: argparse.Namespace) -> list[str]:
    out = ["--datasets", "fashion-mnist", "--accelerator", args.accelerator, "--no-progress"]
    if args.data_dir:
        out += ["--data-dir", args.data_dir]
    if args.accelerator == "gpu":
        out += ["--devices", "0"]
    if args.threads:
        out += ["--threads", str(args.threads)]
    return out


def throughput(db: Path, wall: float) -> dict:
    """Runs, finished runs, stacks and runs per hour of a grid's database: from the first run's
    start to the last one's end, and (with start-up) over the command's ``wall`` seconds."""
    rows_db = runs(db)
    done = [r for r in rows_db if r["status"] == "finished"]
    starts = [when(r["started_at"]) for r in rows_db if r["started_at"]]
    ends = [when(r["finished_at"]) for r in done if r["finished_at"]]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    return {
        "runs": len(rows_db), "finished": len(done), "wall_s": wall, "span_s": span,
        "stacks": len({r["stack"] for r in done if r.get("stack")}),
        "per_hour": len(done) / span * 3600 if span else None,
        "per_hour_wall": len(done) / wall * 3600 if wall else None,
    }  # fmt: skip


def workers(args: argparse.Namespace) -> list[dict]:
    rows = []
    for count in args.workers:
        folder = args.work / f"workers-{count}"
        db = folder / "bench.db"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        grid = ["run", "--db", f"sqlite:///{db}", "--runs-dir", str(folder / "runs"),
                "--archs", "lenet5", "--methods", "random", "--densities", *args.densities,
                "--seeds", *args.seeds, "--epochs", "1", "--train-subset", str(args.train_subset),
                "--workers", str(count), *common(args)]
        code, wall, _ = bench(grid, args.out / "logs" / f"workers-{count}.log", args.timeout)
        rows.append({"workers": count, "exit": code, **throughput(db, wall)})
        print(json.dumps(rows[-1]), flush=True)
        save(args, rows)
    return rows


def stacked(args: argparse.Namespace) -> list[dict]:
    """Part 5: each of ``--archs`` (EPL over ``--densities`` x ``--seeds``, plus dense), one
    worker, ``--stack off`` then ``--stack auto``: runs per hour of each, from the database."""
    rows = []
    for arch in args.archs:
        for stack in ("off", "auto"):
            folder = args.work / f"stacked-{arch}-{stack}"
            db = folder / "bench.db"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            grid = ["run", "--db", f"sqlite:///{db}", "--runs-dir", str(folder / "runs"),
                    "--archs", arch, "--methods", "epl", "--densities", *args.densities,
                    "--seeds", *args.seeds, "--epochs", str(args.epochs), "--train-subset",
                    str(args.train_subset), "--stack", stack, *common(args)]
            log = args.out / "logs" / f"stacked-{arch}-{stack}.log"
            code, wall, _ = bench(grid, log, args.timeout)
            rows.append({"arch": arch, "stack": stack, "exit": code, **throughput(db, wall)})
            print(json.dumps(rows[-1]), flush=True)
            save(args, rows)
    return rows


def save(args: argparse.Namespace, rows: list[dict]) -> None:
    """Write the rows so far: a part cut short keeps what it measured."""
    (args.out / f"{args.part}.json").write_text(json.dumps(rows, indent=1, default=str))


def mask_digest(checkpoint: Path) -> tuple[str | None, str | None]:
    """SHA-256 (12 hex) of the masks (or DCTpS supports) in a checkpoint, and of every tensor."""
    if not checkpoint.exists():
        return None, None
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    masks, weights = hashlib.sha256(), hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        weights.update(name.encode() + data)
        if name.endswith((".mask", ".indices")):
            masks.update(name.encode() + data)
    return masks.hexdigest()[:12], weights.hexdigest()[:12]


def layers(db: Path, log: Path) -> list[tuple]:
    """``bench query layers`` as rows (method, density, layer, kept, total), run ids left out."""
    if not db.exists():
        return []
    query = ["query", "layers", "--db", f"sqlite:///{db}", "--format", "csv"]
    code, _, out = bench(query, log, 60, bounded=False)
    if code != 0:
        return []
    table = list(csv.DictReader(io.StringIO(out)))
    keep = [c for c in ("method", "density", "layer_index", "name", "kept", "total")
            if table and c in table[0]]
    return sorted(tuple(row[c] for c in keep) for row in table)


def repeat(args: argparse.Namespace) -> list[dict]:
    outcome: dict[str, dict] = {}
    table: dict[str, list[tuple]] = {}
    for side in ("a", "b"):
        folder = args.work / f"repeat-{side}"
        db, runs_dir = folder / "bench.db", folder / "runs"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        grid = ["run", "--db", f"sqlite:///{db}", "--runs-dir", str(runs_dir),
                "--archs", "resnet18_w16", "--methods", *args.methods, "--densities", "0.01",
                "--seeds", "0", "--epochs", str(args.epochs),
                "--train-subset", str(args.train_subset), "--workers", str(args.repeat_workers),
                *common(args)]
        # Each side gets its share of what is left, so that run B is never starved by run A.
        share = (DEADLINE[0] - time.monotonic()) / (2 if side == "a" else 1)
        code, wall, _ = bench(grid, args.out / "logs" / f"repeat-{side}.log",
                              min(args.timeout, share))
        print(f"repeat {side}: exit {code}, {wall:.0f} s", flush=True)
        table[side] = layers(db, args.out / "logs" / f"layers-{side}.log")
        for row in runs(db):
            masks, weights = mask_digest(runs_dir / row["config_hash"] / "last.ckpt")
            entry = outcome.setdefault(row["config_hash"], {"method": row["method"]})
            entry[side] = {"status": row["status"], "reason": row["reason"],
                           "test_acc": row["test_acc"], "masks": masks, "weights": weights,
                           "deterministic": row.get("deterministic"),
                           "nondeterministic_ops": row.get("nondeterministic_ops")}
    rows = []
    for entry in sorted(outcome.values(), key=lambda e: e["method"]):
        a, b = entry.get("a", {}), entry.get("b", {})
        rows.append({
            "method": entry["method"], "status_a": a.get("status"), "status_b": b.get("status"),
            "reason": a.get("reason") or b.get("reason"),
            "as_expected": a.get("status") == b.get("status") == "finished",
            "masks_equal": a.get("masks") is not None and a.get("masks") == b.get("masks"),
            "weights_equal": a.get("weights") is not None and a.get("weights") == b.get("weights"),
            "acc_a": a.get("test_acc"), "acc_b": b.get("test_acc"),
            "nondeterministic_ops": a.get("nondeterministic_ops") or b.get("nondeterministic_ops"),
        })
        print(json.dumps(rows[-1]), flush=True)
    same_layers = bool(table["a"]) and table["a"] == table["b"]
    rows.append({"method": "(bench query layers)", "layers_equal": same_layers,
                 "layer_rows": len(table["a"])})
    print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("workers", "repeat", "stacked"))
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default="gpu")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("device-check-out"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/paibench-device-check"),
                        help="databases and checkpoints (emptied per grid)")
    parser.add_argument("--threads", type=int, default=None, help="bench run --threads")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per bench command")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole part")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--archs", nargs="+", default=["lenet5", "resnet18_w16"],
                        help="stacked: the networks")
    parser.add_argument("--densities", nargs="+", default=DENSITIES)
    parser.add_argument("--seeds", nargs="+", default=["0"])
    parser.add_argument("--train-subset", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2, help="repeat: epochs per run")
    parser.add_argument("--methods", nargs="+", default=["all"], help="repeat: methods")
    parser.add_argument("--repeat-workers", type=int, default=4, help="repeat: bench --workers")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    if args.budget:
        DEADLINE[0] = time.monotonic() + args.budget
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {"workers": workers, "repeat": repeat, "stacked": stacked}[args.part](args)
    for db in sorted(args.work.glob(f"{args.part}*/bench.db")):
        (args.out / "db").mkdir(exist_ok=True)
        shutil.copy(db, args.out / "db" / f"{db.parent.name}.db")
    save(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
