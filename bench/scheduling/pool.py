"""``bench run``: a grid's queue worked by this process, or by N local worker processes.

Every worker runs :class:`~bench.scheduling.queue.QueueWorker` on the grid's study, so a
killed worker's run is handed to a survivor by Optuna's heartbeat, as between machines. The
parent draws the progress bar and one line per run from the database. Workers are forked from
a fork server that imported torch and Lightning once, each holds the read end of a pipe whose
write end only the parent holds, and exits as soon as that pipe closes: a worker whose parent
was killed does not train on.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.config import RunConfig
from bench.errors import BenchError
from bench.pipeline import DEFAULT_RUNS_DIR, RunOutcome, summary_line
from bench.scheduling.queue import (
    DEFAULT_SETTINGS,
    ONE_AT_A_TIME,
    QueueSettings,
    QueueWorker,
    join_grid,
    study_name_for,
)
from bench.stacking.policy import StackPolicy
from bench.threads import cores
from storage import Ledger, engine_url, open_db
from storage.ledger import DONE_STATUSES

ORPHAN_EXIT_CODE = 70


def _exit_when_orphaned(lifeline) -> None:
    """Exit this process at once when the parent's end of ``lifeline`` closes."""

    def watch() -> None:
        multiprocessing.connection.wait([lifeline])
        os._exit(ORPHAN_EXIT_CODE)

    threading.Thread(target=watch, name="paibench-lifeline", daemon=True).start()


def _local_worker(
    url: str,
    study_name: str,
    runs_dir: str,
    settings: QueueSettings,
    threads: int | None,
    share: int,
    device_index: int | None,
    plugins: tuple[str, ...],
    stack: StackPolicy,
    lifeline,
) -> None:
    """Entry point of a worker process: load the plugins, work the grid's study, quietly."""
    _exit_when_orphaned(lifeline)
    import torch

    from bench.plugins import load_files
    from bench.scheduling.queue import open_study

    load_files(list(plugins))  # the fork server never saw them

    if threads is not None:
        torch.set_num_threads(threads)
    ledger = Ledger(open_db(url))
    study = open_study(ledger, settings, study_name)
    # Each worker's runs go to its own GPU, and take at most its share of the cores.
    QueueWorker(
        ledger,
        study,
        settings,
        Path(runs_dir),
        threads=threads,
        max_threads=share,
        device_index=device_index,
        stack=stack,
    ).work()


def run_grid(
    configs: Sequence[RunConfig],
    engine,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    *,
    workers: int = 1,
    threads: int | None = None,
    settings: QueueSettings = DEFAULT_SETTINGS,
    plugins: Sequence[str] = (),
    devices: Sequence[int] | None = None,
    stack: StackPolicy = ONE_AT_A_TIME,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[RunOutcome]:
    """Train every config of the grid not yet in the database; one outcome per config.

    ``threads``: torch threads per run (default: the cores free when each run starts, at most
    the CPUs divided among the workers, :mod:`bench.threads`);
    ``plugins``: files the worker processes load first (this process has loaded them);
    ``devices``: GPU indices the workers are placed on, round-robin.
    Raises BenchError if the workers exit with runs left unfinished.
    """
    from tqdm.auto import tqdm

    if workers < 1:
        raise BenchError(f"--workers must be at least 1, not {workers}")
    configs = list(configs)
    ledger = Ledger(engine)
    by_hash = {c.config_hash(): c for c in configs}
    hashes = list(by_hash)
    seen = {h for h, (s, *_) in ledger.statuses(hashes).items() if s in DONE_STATUSES}
    already = frozenset(seen)
    study, _, _ = join_grid(ledger, configs, settings, study_name_for(configs))
    label = "grid" if workers == 1 else f"grid ({workers} workers)"
    bar = tqdm(
        total=len(hashes),
        initial=len(seen),
        desc=label,
        unit="run",
        disable=not show_progress,
        dynamic_ncols=True,
    )

    def say(outcome: RunOutcome) -> None:
        (bar.write if show_progress else echo)(summary_line(outcome))

    def report() -> None:
        for key, (status, test_acc, reason) in ledger.statuses(hashes).items():
            if status in DONE_STATUSES and key not in seen:
                seen.add(key)
                bar.update()
                say(RunOutcome(by_hash[key], status, test_acc=test_acc, reason=reason))

    codes: list[int | None] = []
    try:
        if workers == 1:
            QueueWorker(
                ledger,
                study,
                settings,
                runs_dir,
                on_outcome=lambda _: report(),
                threads=threads,
                device_index=devices[0] if devices else None,
                stack=stack,
            ).work()
        else:
            codes = _run_processes(
                ledger,
                study.study_name,
                runs_dir,
                workers,
                threads,
                settings,
                tuple(plugins),
                tuple(devices or ()),
                stack,
                report,
            )
        report()
    finally:
        bar.close()
    final = ledger.statuses(hashes)
    unfinished = [h for h in hashes if final.get(h, ("missing",))[0] not in DONE_STATUSES]
    if unfinished:
        detail = f": the workers exited with codes {', '.join(map(str, codes))}" if codes else ""
        raise BenchError(
            f"{len(unfinished)} of {len(hashes)} runs unfinished{detail} (their errors are "
            "above); run the grid again to resume"
        )
    if already:
        echo(f"skipped {len(already)} of {len(hashes)} runs already in the database")
    return [
        RunOutcome(
            by_hash[h],
            "skipped" if h in already else final[h][0],
            test_acc=final[h][1],
            reason=final[h][2],
            skipped=h in already,
        )
        for h in hashes
    ]


def _run_processes(
    ledger: Ledger,
    study_name: str,
    runs_dir: Path,
    workers: int,
    threads: int | None,
    settings: QueueSettings,
    plugins: tuple[str, ...],
    devices: tuple[int, ...],
    stack: StackPolicy,
    report: Callable[[], None],
) -> list[int | None]:
    """Start ``workers`` processes on the study, report while they run; their exit codes."""
    share = max(1, cores() // workers)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bench.scheduling.pool"])
    processes, lifelines = [], []
    for index in range(workers):
        lifeline, keep = context.Pipe(duplex=False)
        process = context.Process(
            target=_local_worker,
            args=(
                engine_url(ledger.engine),
                study_name,
                str(runs_dir),
                settings,
                threads,
                share,
                devices[index % len(devices)] if devices else None,
                plugins,
                stack,
                lifeline,
            ),
            name=f"paibench-worker-{index}",
        )
        process.start()
        lifeline.close()
        processes.append(process)
        lifelines.append(keep)
    try:
        while any(p.is_alive() for p in processes):
            time.sleep(0.5)
            report()
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()
        for keep in lifelines:
            keep.close()
    return [p.exitcode for p in processes]
