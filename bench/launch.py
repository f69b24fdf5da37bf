"""``bench launch``: ``bench worker`` jobs, one per GPU, submitted through Submitit.

The launch enqueues the grid in its Optuna study (so a bad database is an error here, not in
every job), then submits jobs whose every task runs the grid's ``bench worker`` command: the
flags ``bench launch`` was given, generated from the same declarations, with paths made
absolute. The workers meet in the study as workers started by hand do; a dead worker's run is
taken over by another, which resumes its checkpoint from a shared ``--runs-dir``. The jobs'
shape and Submitit's side are in :mod:`bench.submitting`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from submitit.core.utils import FailedJobError

from bench.config import RunConfig
from bench.errors import BenchError
from bench.grid import GridSpec
from bench.options import cli_fields, flag_of, values
from bench.settings import LaunchSettings, QueueSettings, RunPlace, WorkerPlace
from bench.submitting import Layout, layout, make_executor, submit

__all__ = ["checked_here", "layout", "start", "wait_for", "worker_argv"]


def start(
    args: argparse.Namespace,
    settings: LaunchSettings,
    shape: Layout,
    configs: Sequence[RunConfig],
    url: str,
    place: RunPlace,
) -> tuple[Any, list[Any]]:
    """Enqueue the grid, submit the jobs and say where they are; (the ledger, the jobs)."""
    import storage
    from bench.scheduling.queue import join_grid

    executor = make_executor(settings, shape)
    warn_about_sqlite(settings, url)
    ledger = storage.Ledger(storage.open_db(url))
    queue = QueueSettings(**values(args, QueueSettings))
    name = WorkerPlace(**values(args, WorkerPlace)).optuna_study
    study, enqueued, done = join_grid(ledger, configs, queue, name)
    where = storage.display_url(url)
    print(f"study {study.study_name} in {where}: {enqueued} runs enqueued, {done} already done")
    jobs = submit(executor, shape, worker_argv(args, url, place))
    describe(jobs, shape, settings.executor)
    if not settings.wait:
        print(f"follow the runs with: bench query --db {where}")
    return ledger, jobs


def checked_here(args: argparse.Namespace, settings: LaunchSettings) -> argparse.Namespace:
    """``args`` with what this machine can check: on SLURM, not ``--accelerator`` (the jobs
    look for their GPUs where they run; a login node may have none)."""
    if settings.executor == "local":
        return args
    return argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "accelerator"})


def warn_about_sqlite(settings: LaunchSettings, url: str) -> None:
    if settings.executor == "slurm" and url.startswith("sqlite"):
        print(
            "bench: warning: SQLite on a shared file system is not safe for workers on several "
            "machines; give --db postgresql://USER@HOST/DB",
            file=sys.stderr,
        )


def absolute_url(url: str) -> str:
    """A SQLite URL with its file made absolute (the jobs may start elsewhere); others as is."""
    prefix = "sqlite:///"
    path = url.removeprefix(prefix)
    if not url.startswith(prefix) or path in ("", ":memory:") or os.path.isabs(path):
        return url
    return prefix + os.path.abspath(path)


def worker_argv(args: argparse.Namespace, url: str, place: RunPlace) -> list[str]:
    """The ``bench worker`` arguments of the grid ``args`` describes, paths made absolute.

    Generated from the same option declarations as the parser; ``--device`` is each task's.
    """
    argv = ["--db", absolute_url(url), "--runs-dir", os.path.abspath(place.runs_dir)]
    for plugin in place.plugin:
        argv += ["--plugin", os.path.abspath(plugin)]
    skip = {"db", "runs_dir", "plugin", "device"}
    for cls in (GridSpec, RunConfig, RunPlace, QueueSettings, WorkerPlace):
        for f, spec in cli_fields(cls):
            if f.name in skip or not hasattr(args, f.name):
                continue
            value, flag = getattr(args, f.name), flag_of(f, spec)
            if spec.flag_only:
                argv += [flag] if value else []
            elif spec.repeat:
                argv += [part for item in value for part in (flag, str(item))]
            elif spec.nargs in ("+", "*"):
                argv += [flag, *map(str, value)]
            elif spec.nargs == "?" and value == spec.const:
                argv += [flag]
            else:
                argv += [flag, str(value)]
    return argv


def describe(jobs: Sequence[Any], shape: Layout, executor: str, echo=print) -> None:
    """Print the job ids and where their logs are."""
    where = "GPU" if shape.gpus_per_node else "CPU worker"
    echo(
        f"submitted {len(jobs)} {executor} job{'s' * (len(jobs) > 1)}: {shape.workers} bench "
        f"workers ({shape.nodes} node{'s' * (shape.nodes > 1)} x {shape.per_node} {where}"
        f"{'s' * (shape.per_node > 1)} each)"
    )
    for job in jobs:
        first, last = job.task(0).paths.stdout, job.task(job.num_tasks - 1).paths.stdout
        logs = str(first) if job.num_tasks == 1 else f"{first} .. {last.name}"
        echo(f"  job {job.job_id}: {job.num_tasks} worker(s), logs {logs} (and .err)")


def wait_for(
    jobs: Sequence[Any],
    ledger: Any,
    configs: Sequence[RunConfig],
    *,
    poll: float = 2.0,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Wait for the jobs, printing each run of the grid as it ends; the config hashes of the
    runs that ended meanwhile. A one-line error if the jobs ended with runs unfinished; tasks
    that ended without a result are named on stderr."""
    from bench.pipeline import RunOutcome, summary_line
    from storage.ledger import DONE_STATUSES

    by_hash = {c.config_hash(): c for c in configs}
    seen = {h for h, (s, *_) in ledger.statuses(list(by_hash)).items() if s in DONE_STATUSES}
    before = frozenset(seen)

    def report() -> dict[str, Any]:
        statuses = ledger.statuses(list(by_hash))
        for key, (status, test_acc, reason) in statuses.items():
            if status in DONE_STATUSES and key not in seen:
                seen.add(key)
                echo(summary_line(RunOutcome(by_hash[key], status, test_acc, reason)))
        return statuses

    while not all(job.done() for job in jobs):
        report()
        time.sleep(poll)
    statuses = report()
    for job in jobs:
        for index in range(job.num_tasks):
            _say_how_it_ended(job.task(index), job.job_id, index)
    unfinished = sum(statuses.get(h, ("missing",))[0] not in DONE_STATUSES for h in by_hash)
    if unfinished:
        raise BenchError(
            f"{unfinished} of {len(by_hash)} runs unfinished when the jobs ended (see their "
            "logs); launch again to resume them"
        )
    return [h for h in by_hash if h not in before]


def _say_how_it_ended(task: Any, job_id: str, index: int) -> None:
    if not task.paths.result_pickle.exists():
        print(
            f"bench: job {job_id} task {index} ended without a result (killed, or out of time); "
            f"its log: {task.paths.stdout}",
            file=sys.stderr,
        )
        return
    try:
        code = task.result()
    except FailedJobError:
        code = "an exception"
    if code != 0:
        print(
            f"bench: job {job_id} task {index}: bench worker ended ({_ending(code)}); its log: "
            f"{task.paths.stdout}",
            file=sys.stderr,
        )


def _ending(code: Any) -> str:
    if not isinstance(code, int):
        return str(code)
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
