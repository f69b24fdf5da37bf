"""Many workers: processes on one machine (``bench run --workers N``) and machines sharing one
PostgreSQL database through Optuna's RDB storage (``bench worker``).

Both run every config through :func:`bench.runner.run_config`, so the claim on the config's
``runs`` row (see :mod:`bench.runner`) is what makes each config train exactly once; the
schedulers only decide who tries what when.

- Local: N processes (forked from a fork server that imported everything once) each
  :func:`~bench.runner.drain` the grid, starting at different offsets, with one torch thread
  each when the CPUs run out; the parent draws the progress bar and the per-run lines from the
  database.
- Optuna: a study per grid; each config is an enqueued trial carrying the config as user
  attributes. Workers pop trials with ``study.optimize(n_trials=1)``, so Optuna's heartbeat
  thread runs during each trial; a trial whose heartbeat stops is failed by
  ``fail_stale_trials`` and re-enqueued by ``RetryFailedTrialCallback``, and the retry carries
  the dead attempt's number so the new worker takes the run over (and resumes its checkpoint
  when it can see it). A worker leaves when the study has no waiting and no running trials.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from bench.config import RunConfig
from bench.errors import BenchError
from bench.runner import (
    DEFAULT_POLICY,
    DEFAULT_RUNS_DIR,
    DONE_STATUSES,
    Claim,
    ClaimPolicy,
    LostClaim,
    RunOutcome,
    drain,
    record_failure,
    summary_line,
)
from storage import engine_url, exclusive, open_db, session_scope
from storage.schema import Run

CONFIG_ATTR = "paibench_config"
HASH_ATTR = "paibench_config_hash"
ATTEMPT_ATTR = "paibench_attempt"  # the runs.attempts this trial's worker claimed
STATUS_ATTR = "paibench_status"


# One machine, N processes ---------------------------------------------------------------------


def _local_worker(
    url: str,
    configs: list[RunConfig],
    runs_dir: str,
    policy: ClaimPolicy,
    threads: int | None,
) -> None:
    """Entry point of a worker process: drain the grid, quietly."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    drain(configs, open_db(url), Path(runs_dir), policy=policy)


def _statuses(
    engine: Engine, hashes: Sequence[str]
) -> dict[str, tuple[str, float | None, str | None]]:
    """``config_hash -> (status, test_acc, reason)`` for the runs of ``hashes`` in the database."""
    found: dict[str, tuple[str, float | None, str | None]] = {}
    with engine.connect() as conn:
        for start in range(0, len(hashes), 500):
            rows = conn.execute(
                select(Run.config_hash, Run.status, Run.test_acc, Run.reason).where(
                    Run.config_hash.in_(hashes[start : start + 500])
                )
            )
            found.update((h, (s, acc, reason)) for h, s, acc, reason in rows)
    return found


def run_parallel(
    configs: Sequence[RunConfig],
    engine: Engine,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    *,
    workers: int,
    policy: ClaimPolicy = DEFAULT_POLICY,
    threads: int | None = None,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[RunOutcome]:
    """Run ``configs`` in ``workers`` processes sharing the database of ``engine``.

    ``threads``: torch threads per worker (default: the CPUs divided among the workers, at
    least 1). A killed worker's run is taken over by a surviving one. Raises BenchError if
    workers exit with runs left unfinished.
    """
    from tqdm.auto import tqdm

    if workers < 1:
        raise BenchError(f"--workers must be at least 1, not {workers}")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    by_hash = {c.config_hash(): c for c in configs}
    hashes = list(by_hash)
    seen = {h for h, (status, *_) in _statuses(engine, hashes).items() if status in DONE_STATUSES}
    already = frozenset(seen)
    # A fork server imports torch, Lightning and the methods once and forks the workers from
    # that clean process: N workers cost one start-up, and no parent thread state is copied.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bench.workers"])
    processes = []
    for index in range(workers):
        offset = index * len(configs) // workers  # start apart, so workers rarely collide
        order = [*configs[offset:], *configs[:offset]]
        process = context.Process(
            target=_local_worker,
            args=(engine_url(engine), order, str(runs_dir), policy, threads),
            name=f"paibench-worker-{index}",
        )
        process.start()
        processes.append(process)
    bar = tqdm(
        total=len(hashes),
        initial=len(seen),
        desc=f"grid ({workers} workers)",
        unit="run",
        disable=not show_progress,
        dynamic_ncols=True,
    )

    def report() -> None:
        for key, (status, test_acc, reason) in _statuses(engine, hashes).items():
            if status in DONE_STATUSES and key not in seen:
                seen.add(key)
                bar.update()
                line = summary_line(by_hash[key], status, test_acc, reason)
                (bar.write if show_progress else echo)(line)

    try:
        while any(p.is_alive() for p in processes):
            time.sleep(0.5)
            report()
        report()
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()
        bar.close()
    final = _statuses(engine, hashes)
    unfinished = [h for h in hashes if final.get(h, ("missing",))[0] not in DONE_STATUSES]
    if unfinished:
        codes = ", ".join(str(p.exitcode) for p in processes)
        raise BenchError(
            f"{len(unfinished)} of {len(hashes)} runs unfinished: the workers exited with codes "
            f"{codes} (their errors are above); run the grid again to resume"
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


# Many machines, Optuna ------------------------------------------------------------------------


@dataclass(frozen=True)
class OptunaSettings:
    """Optuna's heartbeat: beat every ``heartbeat_interval`` s; a trial silent for
    ``grace_period`` s is failed and re-enqueued, at most ``max_retry`` times."""

    heartbeat_interval: int = 10
    grace_period: int = 60
    max_retry: int = 3
    poll: float = 2.0  # seconds between looks at the queue while others run


def study_name_for(configs: Sequence[RunConfig]) -> str:
    """One study per grid: named by the hash of its sorted config hashes."""
    text = ",".join(sorted(c.config_hash() for c in configs))
    return "paibench-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _experimental_ok() -> Iterator[None]:
    """Optuna's heartbeat features are all marked experimental; they are what we rely on."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


def _retry_callback() -> type:
    """Optuna's retry-on-stale-heartbeat callback (renamed in Optuna 4.9)."""
    from optuna import storages

    return getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or (
        storages.RetryFailedTrialCallback
    )


class _RetryOrFail:
    """Optuna's retry of a dead worker's trial; when its retries are spent, a ``failed`` row."""

    def __init__(self, engine: Engine, max_retry: int) -> None:
        self.engine, self.max_retry = engine, max_retry
        with _experimental_ok():
            self.retry = _retry_callback()(max_retry=max_retry)

    def __call__(self, study, trial) -> None:
        with _experimental_ok():
            died = len(_retry_callback().retry_history(trial)) + 1
        if died <= self.max_retry:
            self.retry(study, trial)
            return
        key, attempt = trial.user_attrs.get(HASH_ATTR), trial.user_attrs.get(ATTEMPT_ATTR)
        if key is None or attempt is None:
            return
        with session_scope(self.engine) as session:
            run_id = session.scalar(select(Run.id).where(Run.config_hash == key))
        if run_id is not None:
            error = WorkerLost(f"its worker died {died} times (Optuna heartbeat lost)")
            with contextlib.suppress(LostClaim):  # another worker holds it now: not ours to fail
                record_failure(self.engine, Claim(run_id, attempt), "worker", error)


class WorkerLost(Exception):
    """A run whose workers kept dying (out of memory, killed): recorded as a failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def optuna_storage(engine: Engine, settings: OptunaSettings):
    """Optuna's RDB storage in our database, with heartbeats and retries of dead workers' runs."""
    import optuna

    kwargs = {"pool_pre_ping": True}
    if engine.dialect.name == "sqlite":
        kwargs = {"connect_args": {"timeout": 60}}
    renamed = hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")  # Optuna >= 4.9
    callback = "heartbeat_stale_trial_callback" if renamed else "failed_trial_callback"
    with _experimental_ok():
        return optuna.storages.RDBStorage(
            engine_url(engine),
            engine_kwargs=kwargs,
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
            **{callback: _RetryOrFail(engine, settings.max_retry)},
        )


def enqueue_grid(study, engine: Engine, configs: Sequence[RunConfig]) -> tuple[int, int]:
    """Enqueue every config that is neither done nor queued nor running; (enqueued, done).

    Under a lock, so that workers started together enqueue each config once; running the same
    command again re-enqueues what a previous launch left unfinished.
    """
    from optuna.trial import TrialState

    hashes = [c.config_hash() for c in configs]
    with exclusive(engine, f"enqueue-{study.study_name}"):
        done = {
            h for h, (status, *_) in _statuses(engine, hashes).items() if status in DONE_STATUSES
        }
        live = {
            t.user_attrs.get(HASH_ATTR)
            for t in study.get_trials(
                deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)
            )
        }
        enqueued = 0
        for config, key in zip(configs, hashes):
            if key in done or key in live:
                continue
            study.enqueue_trial({}, user_attrs={CONFIG_ATTR: config.to_json(), HASH_ATTR: key})
            enqueued += 1
    return enqueued, len(done)


def optuna_worker(
    configs: Sequence[RunConfig],
    engine: Engine,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    *,
    study_name: str | None = None,
    settings: OptunaSettings = OptunaSettings(),
    policy: ClaimPolicy = DEFAULT_POLICY,
    echo: Callable[[str], None] = print,
) -> list[RunOutcome]:
    """Join (or create) the grid's study, enqueue what is missing, and work until it is empty."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or study_name_for(configs)
    with exclusive(engine, "optuna-init"):  # Optuna creates its tables on first use
        study = optuna.create_study(
            study_name=name,
            storage=optuna_storage(engine, settings),
            direction="maximize",
            load_if_exists=True,
        )
    enqueued, done = enqueue_grid(study, engine, configs)
    echo(f"study {name}: enqueued {enqueued}, {done} of {len(configs)} already in the database")
    outcomes: list[RunOutcome] = []

    def objective(trial: optuna.Trial) -> float:
        data = trial.user_attrs.get(CONFIG_ATTR)
        if data is None:  # the queue emptied between our look and the ask
            raise optuna.TrialPruned("no enqueued config left")
        # drain, not a single claim: a run another worker holds is waited for (and taken over
        # if that worker dies), so every trial ends with its config done by someone.
        (outcome,) = drain(
            [RunConfig.from_json(data)],
            engine,
            runs_dir,
            policy=policy,
            takeover_attempt=trial.user_attrs.get(ATTEMPT_ATTR),
            on_claim=lambda held: trial.set_user_attr(ATTEMPT_ATTR, held.attempt),
        )
        trial.set_user_attr(STATUS_ATTR, outcome.status)
        outcomes.append(outcome)
        if outcome.status == "finished":
            echo(summary_line(outcome.config, outcome.status, outcome.test_acc, outcome.reason))
            return float(outcome.test_acc)
        if outcome.status == "failed":
            echo(summary_line(outcome.config, outcome.status, outcome.test_acc, outcome.reason))
        raise optuna.TrialPruned(outcome.status)

    while True:
        with _experimental_ok():
            optuna.storages.fail_stale_trials(study)
        if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                break
            time.sleep(settings.poll)
            continue
        try:
            study.optimize(objective, n_trials=1, gc_after_trial=False)
        except ValueError as error:
            if not str(error).startswith("Cannot tell a"):
                raise
            # This worker was thought dead and its trial failed; the retry belongs to another.
    return outcomes
