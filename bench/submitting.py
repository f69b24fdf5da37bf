"""Submitit's side of ``bench launch``: the jobs' shape, the executor and its parameters, and
the task each job runs (``bench worker`` on the grid, ``--device cuda:<local rank>``).

``--executor slurm`` submits with sbatch (several jobs as one job array); ``--executor local``
runs the jobs on this machine (Submitit's LocalExecutor). A job is ``--nodes`` nodes with one
task (one worker) per GPU of each; a job out of time or preempted is requeued by Submitit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from submitit.helpers import Checkpointable

from bench.errors import BenchError
from bench.settings import LaunchSettings

# Submitit SLURM parameters that a flag of ``bench launch`` sets.
MAPPED = {
    "partition": "--slurm-partition",
    "account": "--slurm-account",
    "nodes": "--nodes",
    "gpus_per_node": "--gpus-per-node",
    "ntasks_per_node": "--gpus-per-node",
    "time": "--timeout-min",
}
LIST_PARAMETERS = ("setup", "teardown", "srun_args")  # repeated KEY=VALUE add a line each
JOB_NAME = "paibench-worker"
STOP_SECONDS = 30  # how long a stopped task waits for its worker to hand its run back


@dataclass(frozen=True)
class Layout:
    """How the workers are laid out: ``jobs`` jobs of ``nodes`` x ``per_node`` workers."""

    jobs: int
    nodes: int
    per_node: int  # workers (tasks) per node: one per GPU, or one on a CPU
    gpus_per_node: int  # GPUs asked for on each node (0: the workers train on CPUs)

    @property
    def workers(self) -> int:
        return self.jobs * self.nodes * self.per_node


def layout(settings: LaunchSettings, accelerator: str) -> Layout:
    """The jobs ``settings`` ask for, or a one-line error (before anything is created)."""
    gpus = settings.gpus_per_node if accelerator != "cpu" else 0
    per_node = gpus or 1
    per_job = settings.nodes * per_node
    workers = settings.jobs or per_job
    if workers % per_job:
        shape = f"--nodes {settings.nodes} x --gpus-per-node {per_node}"
        raise BenchError(
            f"--jobs {workers} is not a multiple of the {per_job} workers of one job ({shape}); "
            f"give --jobs {per_job * (workers // per_job + 1)} or change the job's shape"
        )
    if settings.executor == "local":
        if settings.nodes > 1:
            raise BenchError("--executor local runs on this machine: --nodes must be 1")
        slurm = [flag for flag, given in _slurm_flags(settings) if given]
        if slurm:
            raise BenchError(f"{', '.join(slurm)}: only with --executor slurm")
    return Layout(workers // per_job, settings.nodes, per_node, gpus)


def _slurm_flags(settings: LaunchSettings) -> list[tuple[str, bool]]:
    return [
        ("--slurm-partition", settings.slurm_partition is not None),
        ("--slurm-account", settings.slurm_account is not None),
        ("--slurm-option", bool(settings.slurm_option)),
    ]


def _value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return int(text) if text.isdigit() else text


def slurm_parameters(settings: LaunchSettings, shape: Layout) -> dict[str, Any]:
    """The parameters of Submitit's SlurmExecutor (``update_parameters``) for these jobs."""
    params: dict[str, Any] = {
        "job_name": JOB_NAME,
        "nodes": shape.nodes,
        "ntasks_per_node": shape.per_node,
        "time": settings.timeout_min,
    }
    if shape.gpus_per_node:
        params["gpus_per_node"] = shape.gpus_per_node
    if settings.slurm_partition is not None:
        params["partition"] = settings.slurm_partition
    if settings.slurm_account is not None:
        params["account"] = settings.slurm_account
    known = submitit.SlurmExecutor._valid_parameters()
    extra: dict[str, Any] = {}
    for item in settings.slurm_option:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise BenchError(f"bad --slurm-option {item!r} (valid: KEY=VALUE, e.g. mem=64G)")
        if key in MAPPED:
            raise BenchError(f"--slurm-option {key}: set it with {MAPPED[key]}")
        if key in LIST_PARAMETERS:
            params.setdefault(key, []).append(text)
        elif key in known:
            params[key] = _value(text)
        else:  # not one of Submitit's: written as #SBATCH --key=value
            extra[key.replace("_", "-")] = _value(text)
    if extra:
        params["additional_parameters"] = extra
    return params


def local_parameters(settings: LaunchSettings, shape: Layout) -> dict[str, Any]:
    """The parameters of Submitit's LocalExecutor for these jobs."""
    params: dict[str, Any] = {
        "timeout_min": settings.timeout_min,
        "tasks_per_node": shape.per_node,
        "gpus_per_node": shape.gpus_per_node,
    }
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if shape.gpus_per_node and visible and all(v.strip().isdigit() for v in visible.split(",")):
        params["visible_gpus"] = tuple(int(v) for v in visible.split(","))
    return params


def make_executor(settings: LaunchSettings, shape: Layout) -> submitit.Executor:
    """A Submitit executor, its parameters set; one-line errors for what Submitit refuses."""
    folder = Path(settings.log_dir).resolve()
    try:
        if settings.executor == "slurm":
            executor: submitit.Executor = submitit.SlurmExecutor(folder)
            parameters = slurm_parameters(settings, shape)
        else:
            executor = submitit.LocalExecutor(folder)
            parameters = local_parameters(settings, shape)
    except RuntimeError as error:  # SlurmExecutor without srun
        raise BenchError(
            f"--executor slurm: {error} (on one machine use --executor local)"
        ) from None
    try:
        executor.update_parameters(**parameters)
    except (ValueError, TypeError) as error:
        raise BenchError(f"Submitit refused the parameters: {str(error).splitlines()[0]}") from None
    return executor


def local_device(gpus: int) -> int:
    """The GPU of this task: its local rank among the GPUs it can see."""
    rank = submitit.JobEnvironment().local_rank
    visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return rank % (len(visible) or gpus)


class WorkerTask(Checkpointable):
    """One task of a job: the ``bench worker`` command on the grid, its exit status the task's
    result. Out of time or preempted, Submitit requeues the task as it is; the worker, stopped
    with SIGINT, hands its run back first (and a worker that died is taken over)."""

    def __init__(self, argv: Sequence[str], gpus: int) -> None:
        self.argv, self.gpus = list(argv), gpus

    def command(self) -> list[str]:
        device = ["--device", f"cuda:{local_device(self.gpus)}"] if self.gpus else []
        return [sys.executable, "-m", "bench.cli", "worker", *self.argv, *device]

    def __call__(self) -> int:
        worker = subprocess.Popen(self.command(), preexec_fn=_leave_the_signal_to_submitit)
        try:
            return worker.wait()
        finally:  # this task stopped (requeued, cancelled): so does its worker
            if worker.poll() is None:
                worker.send_signal(signal.SIGINT)
                try:
                    worker.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    worker.kill()


def _leave_the_signal_to_submitit() -> None:
    """In the worker: ignore the signal SLURM sends before the time limit (USR2), which
    Submitit handles in the task; the worker is then stopped with SIGINT."""
    signal.signal(getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG), signal.SIG_IGN)


def submit(executor: submitit.Executor, shape: Layout, argv: Sequence[str]) -> list[Any]:
    """Submit ``shape.jobs`` jobs of the worker; their Submitit jobs."""
    task = WorkerTask(argv, shape.gpus_per_node)
    try:
        if shape.jobs == 1:
            return [executor.submit(task)]
        with executor.batch():
            jobs = [executor.submit(task) for _ in range(shape.jobs)]
        return jobs
    except (FailedJobError, FailedSubmissionError, OSError) as error:
        raise BenchError(f"submission failed: {str(error).strip().splitlines()[-1]}") from None
