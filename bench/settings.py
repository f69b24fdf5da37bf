"""The settings of the CLI commands that are not part of a run: where, how many, what to load.

Each is a dataclass whose fields declare their own flags (:mod:`bench.options`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.options import int_list, option, parse_device, positive_int
from bench.stacking.policy import parse_stack

STACK_HELP = (
    "train the runs that share a network, data set and budget together as one stacked model "
    "(each stays its own run): N = at most N per stack; auto = only where it was measured "
    "faster (on a GPU, sized by memory; on the CPU, networks without convolutions); off"
)

DEFAULT_URL = "sqlite:///bench.db"  # the one in storage.db; repeated here to keep --help fast
QUERY_FORMATS = ("table", "csv", "markdown", "latex", "json")
# ``bench query WHAT`` -> the typed query function of ``storage`` that answers it.
QUERIES = {
    "runs": "runs",
    "accuracy": "accuracy",
    "layers": "layer_allocation",
    "cost": "allocation_cost",
    "spectra": "spectra",
    "epochs": "epoch_metrics",
    "failures": "failures",
    "budgets": "budgets",
}
RUN_STATUSES = ("pending", "running", "finished", "failed")


def _studies() -> tuple[str, ...]:
    from bench.studies import STUDIES

    return tuple(STUDIES)


@dataclass(frozen=True)
class RunPlace:
    """Where a grid's results and checkpoints go, and what to load first."""

    study: str | None = option(
        None,
        "a study preset that defines the whole grid and its budget, into its own database unless "
        "--db is given (paper-mini: the paper's comparison at CPU scale; see docs/paper-mini.md)",
        choices=_studies,
    )
    db: str | None = option(
        None, f"results database URL (default {DEFAULT_URL}; with --study, the study's own file)"
    )
    blocks: tuple[str, ...] = option(
        (),
        "with --study: train only these of its blocks (default: all; a study too long for one "
        "sitting runs in parts, each resuming where it stopped)",
        aliases=("--block",),
        nargs="+",
        metavar="BLOCK",
    )
    runs_dir: str = option("runs", "where checkpoints are kept")
    plugin: tuple[str, ...] = option(
        (),
        "load a Python file that registers methods, architectures or data sets (repeatable)",
        metavar="FILE",
        repeat=True,
    )


@dataclass(frozen=True)
class LocalPool:
    """How ``bench run`` uses this machine."""

    workers: int = option(
        1,
        "worker processes sharing the database (one torch thread each when the CPUs run out)",
        parse=positive_int,
    )
    threads: int | None = option(
        None,
        "torch intra-op threads per run (default: the cores that are free when each run starts, "
        "at most the cores divided among the workers, so a busy CPU never slows a run below "
        "its fair share)",
        parse=positive_int,
    )
    devices: tuple[int, ...] | None = option(
        None,
        "GPU indices the workers are placed on, round-robin (several workers per GPU allowed: "
        "--workers 4 --devices 0 shares one GPU among four runs); with --accelerator gpu",
        nargs="+",
        metavar="INDEX",
        parse=int_list,
    )
    no_progress: bool = option(False, "no progress bar", flag_only=True)
    stack: str = option(
        "auto", STACK_HELP, metavar="N|auto|off", parse=lambda text: str(parse_stack(text))
    )


@dataclass(frozen=True)
class Reruns:
    """Which stored runs of the grid ``bench run`` trains again instead of skipping."""

    retry_failed: str | None = option(
        None,
        "train the grid's failed runs again (all of them, or those whose failure reason contains "
        "the given text); their earlier failures stay in the failures table",
        nargs="?",
        const="",
        metavar="REASON",
    )
    rerun_older_than: str | None = option(
        None,
        "train again the grid's runs recorded by paibench older than this version (or with no "
        "version recorded)",
        metavar="VERSION",
    )


@dataclass(frozen=True)
class WorkerPlace:
    """How ``bench worker`` joins a grid shared with other machines."""

    optuna_study: str | None = option(
        None, "Optuna study name (default: one named by the grid, the same on every machine)"
    )
    device: int | None = option(
        None,
        "the GPU this worker trains on, as cuda:N or N (default cuda:0); with --accelerator gpu",
        metavar="cuda:N",
        parse=lambda text: parse_device(text),
    )
    stack: str = option(
        "auto", STACK_HELP, metavar="N|auto|off", parse=lambda text: str(parse_stack(text))
    )


@dataclass(frozen=True)
class QueueSettings:
    """Optuna's heartbeat and retries, as ``bench run`` and ``bench worker`` flags."""

    heartbeat_interval: int = option(
        10, "seconds between heartbeats of a running trial", parse=positive_int
    )
    grace_period: int = option(
        60,
        "seconds without a heartbeat after which a trial's worker counts as dead and its run "
        "is handed to another worker (a relaunch after a crash waits this long for it)",
        parse=positive_int,
    )
    max_retry: int = option(
        3,
        "times a run is handed on after its worker died before it is recorded failed",
        parse=positive_int,
    )
    poll: float = 1.0  # seconds between looks at the queue while others run


EXECUTORS = ("slurm", "local")


@dataclass(frozen=True)
class LaunchSettings:
    """How ``bench launch`` submits ``bench worker`` jobs through Submitit."""

    executor: str = option(
        "slurm",
        "where the workers run: slurm (sbatch through Submitit, on a cluster) or local (this "
        "machine, Submitit's LocalExecutor)",
        choices=EXECUTORS,
    )
    jobs: int | None = option(
        None,
        "bench worker processes in all, one per GPU (default: --nodes x --gpus-per-node; with "
        "--accelerator cpu, one per node), submitted as jobs of --nodes x --gpus-per-node "
        "workers each",
        metavar="N",
        parse=positive_int,
    )
    nodes: int = option(1, "nodes of each job", parse=positive_int)
    gpus_per_node: int = option(
        1,
        "GPUs of each node, one worker on each (bench worker --device cuda:<local rank>); with "
        "--accelerator gpu or auto",
        parse=positive_int,
    )
    timeout_min: int = option(
        240,
        "minutes a job may run; a job out of time is requeued (3 times at most, a preempted one "
        "always) and its runs resume from their checkpoints",
        parse=positive_int,
    )
    slurm_partition: str | None = option(None, "SLURM partition")
    slurm_account: str | None = option(None, "SLURM account charged for the jobs")
    slurm_option: tuple[str, ...] = option(
        (),
        "any other Submitit SLURM parameter (cpus_per_task=8, mem=64G, qos=high, "
        "constraint=a100, setup='module load cuda'), or any sbatch option (reservation=NAME) "
        "(repeatable)",
        metavar="KEY=VALUE",
        repeat=True,
        parse=tuple,
    )
    log_dir: str = option(
        "launch-logs", "where Submitit keeps the jobs' logs (JOBID_TASK_log.out, .err)"
    )
    wait: bool = option(
        False,
        "wait for the jobs, printing each run as it ends, then the accuracy table like bench run",
        flag_only=True,
    )
