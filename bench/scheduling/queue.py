"""The run queue: one Optuna study per grid, an enqueued trial per config, in the results DB.

Workers pop trials with ``study.optimize(n_trials=1)``, so Optuna's heartbeat thread beats
while each trial runs. A trial whose heartbeat stops is failed by ``fail_stale_trials`` and
re-enqueued by Optuna's retry callback; the retry carries the dead attempt's number, so the
new worker takes the run's row over (and resumes its checkpoint when it can see it). When a
run's retries are spent it is recorded ``failed`` (stage ``worker``).

The ledger's claim on the run's row stays the guard against duplicates: a row held by a
trial that Optuna still counts as running is never taken, whoever asks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from bench.config import RunConfig
from bench.errors import BenchError
from bench.pipeline import DEFAULT_RUNS_DIR, RunOutcome, failure_row, run_one
from bench.scheduling.trials import ATTEMPT_ATTR, CONFIG_ATTR, HASH_ATTR, STATUS_ATTR
from bench.settings import QueueSettings
from bench.stacking.policy import StackPolicy
from bench.threads import threads_for_run
from storage import Claim, Ledger, engine_url, exclusive
from storage.ledger import DONE_STATUSES
from storage.rows import LostClaim, RunIdentity

HOLDER = re.compile(r"^trial-(\d+)@")


DEFAULT_SETTINGS = QueueSettings()
ONE_AT_A_TIME = StackPolicy(1)


def study_name_for(configs: Sequence[RunConfig]) -> str:
    """One study per grid: named by the hash of its sorted config hashes."""
    text = ",".join(sorted(c.config_hash() for c in configs))
    return "paibench-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def identity(config: RunConfig) -> RunIdentity:
    """The ledger's identity columns of ``config``."""
    return RunIdentity(
        config_hash=config.config_hash(),
        config=config.to_json(),
        method=config.method,
        options=config.options,
        arch=config.arch,
        dataset=config.dataset,
        seed=config.seed,
        density=config.density,
    )


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


class WorkerLost(Exception):
    """A run whose workers kept dying (out of memory, killed): recorded as a failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryOrFail:
    """Optuna's retry of a dead worker's trial; when its retries are spent, a ``failed`` row."""

    def __init__(self, ledger: Ledger, max_retry: int) -> None:
        self.ledger, self.max_retry = ledger, max_retry
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
        run_id = self.ledger.run_id(key)
        if run_id is not None:
            error = WorkerLost(f"its worker died {died} times (Optuna heartbeat lost)")
            with contextlib.suppress(LostClaim):  # another worker holds it now: not ours to fail
                self.ledger.record_failure(Claim(run_id, attempt), failure_row("worker", error))


def optuna_storage(ledger: Ledger, settings: QueueSettings):
    """Optuna's RDB storage in our database, with heartbeats and retries of dead workers' runs."""
    import optuna

    engine = ledger.engine
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
            **{callback: RetryOrFail(ledger, settings.max_retry)},
        )


def open_study(ledger: Ledger, settings: QueueSettings, name: str):
    """Create or load the study ``name`` (Optuna creates its tables on first use, once)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with exclusive(ledger.engine, "optuna-init"):
        return optuna.create_study(
            study_name=name,
            storage=optuna_storage(ledger, settings),
            direction="maximize",
            load_if_exists=True,
        )


def enqueue_grid(study, ledger: Ledger, configs: Sequence[RunConfig]) -> tuple[int, int]:
    """Enqueue every config that is neither done nor queued nor running; (enqueued, done).

    Under a lock, so that workers started together enqueue each config once; running the same
    command again re-enqueues what a previous launch left unfinished.
    """
    from optuna.trial import TrialState

    hashes = [c.config_hash() for c in configs]
    with exclusive(ledger.engine, f"enqueue-{study.study_name}"):
        done = {h for h, (status, *_) in ledger.statuses(hashes).items() if status in DONE_STATUSES}
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


class QueueWorker:
    """Trains the trials of one study until none is waiting or running."""

    def __init__(
        self,
        ledger: Ledger,
        study,
        settings: QueueSettings,
        runs_dir: Path = DEFAULT_RUNS_DIR,
        *,
        progress: bool = False,
        on_outcome: Callable[[RunOutcome], None] | None = None,
        threads: int | None = None,
        max_threads: int | None = None,
        device_index: int | None = None,
        stack: StackPolicy = ONE_AT_A_TIME,
    ) -> None:
        self.ledger, self.study, self.settings = ledger, study, settings
        self.stack = stack  # --stack: how many runs train together (1: one at a time)
        self.runs_dir, self.progress, self.on_outcome = runs_dir, progress, on_outcome
        # None: each run gets the cores free when it starts (bench.threads), at most max_threads.
        self.threads, self.max_threads = threads, max_threads
        self.device_index = device_index  # the GPU this worker's runs use, when they use one
        self.outcomes: list[RunOutcome] = []

    def alive(self, worker: str | None) -> bool:
        """Whether the holder of a ``running`` row is a trial Optuna still counts as running."""
        from optuna.trial import TrialState

        match = HOLDER.match(worker or "")
        if match is None:  # no scheduler vouches for it (an older version's row): dead
            return False
        try:
            trial = self.study._storage.get_trial(int(match.group(1)))
        except KeyError:
            return False
        return trial.state == TrialState.RUNNING

    def _claim(self, config: RunConfig, trial) -> Claim | None:
        """Claim the trial's run, waiting while a live trial holds it; None if already done."""
        holder = f"trial-{trial._trial_id}@{socket.gethostname()}:{os.getpid()}"
        takeover = trial.user_attrs.get(ATTEMPT_ATTR)
        while True:
            held = self.ledger.claim(
                identity(config), holder, alive=self.alive, takeover_attempt=takeover
            )
            if held == "done":
                return None
            if held != "busy":
                return held
            time.sleep(self.settings.poll)
            fail_stale_trials_everywhere(self.study._storage)

    def objective(self, trial) -> float:
        import optuna

        data = trial.user_attrs.get(CONFIG_ATTR)
        if data is None:  # the queue emptied between our look and the ask
            raise optuna.TrialPruned("no enqueued config left")
        config = RunConfig.from_json(data)
        held = self._claim(config, trial)
        if held is None:
            outcome = RunOutcome(config, "skipped", skipped=True, reason="done by another worker")
        else:
            trial.set_user_attr(ATTEMPT_ATTR, held.attempt)
            torch.set_num_threads(self.threads or threads_for_run(self.max_threads))
            try:
                outcome = run_one(
                    config,
                    self.ledger.recorder(held),
                    self.runs_dir,
                    self.progress,
                    device_index=self.device_index,
                )
            except LostClaim as lost:
                outcome = RunOutcome(config, "busy", reason=str(lost))
            except BaseException:
                self.ledger.release(held)  # not a result of the run: hand it back
                raise
        trial.set_user_attr(STATUS_ATTR, outcome.status)
        self.outcomes.append(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        if outcome.status == "finished":
            return float(outcome.test_acc or 0.0)
        raise optuna.TrialPruned(outcome.status)

    def work(self) -> list[RunOutcome]:
        """Pop and train trials until the study has none waiting or running."""
        import optuna
        from optuna.trial import TrialState

        stacked = None
        if self.stack.enabled:
            from bench.scheduling.stacked import StackedLoop

            stacked = StackedLoop(self)
        while True:
            if stacked is not None and stacked.held_over is not None:
                stacked.train(stacked.next_stack())  # a trial we asked is ours to train first
                continue
            with _experimental_ok():
                optuna.storages.fail_stale_trials(self.study)
            if not self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                if not self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    break
                time.sleep(self.settings.poll)
                continue
            if stacked is not None and not stacked.next_is_alone():
                stacked.train(stacked.next_stack() or [])
                continue
            try:
                self.study.optimize(self.objective, n_trials=1, gc_after_trial=False)
            except ValueError as error:
                if not str(error).startswith("Cannot tell a"):
                    raise
                # This worker was thought dead and its trial failed; the retry belongs to another.
        return self.outcomes


def fail_stale_trials_everywhere(storage) -> None:
    """Fail the stale trials of every study in ``storage``, not only this grid's.

    A run's row can be held by a trial of another grid's study (a launch of other blocks of a
    study over the same database, killed): only a sweep of that study notices its worker is
    dead, and a worker waiting for the row would otherwise wait for ever.
    """
    import optuna

    with _experimental_ok():
        for summary in storage.get_all_studies():
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            optuna.storages.fail_stale_trials(study)


def join_grid(
    ledger: Ledger,
    configs: Sequence[RunConfig],
    settings: QueueSettings,
    study_name: str | None = None,
):
    """Open the grid's study and enqueue what is missing; returns (study, enqueued, done)."""
    if not configs:
        raise BenchError("the grid has no runs")
    study = open_study(ledger, settings, study_name or study_name_for(configs))
    enqueued, done = enqueue_grid(study, ledger, configs)
    return study, enqueued, done
