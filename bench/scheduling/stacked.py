"""The queue worker's stacked loop: ask Optuna for up to N trials that share a stack key, claim
each run, and train them as one stack (``bench run --stack``).

Trials are asked in queue order. A trial whose key differs from the stack being formed is kept
for the next stack, so no trial is asked and left behind. Each asked trial gets Optuna's own
heartbeat thread, so a killed worker's trials go stale and are retried exactly as unstacked ones
are; a retried run resumes from its own ``stack.pt``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from bench.config import RunConfig
from bench.pipeline import RunOutcome
from bench.scheduling.trials import ATTEMPT_ATTR, CONFIG_ATTR, STATUS_ATTR
from bench.stacking.policy import stack_key, stack_size
from bench.stacking.train import checkpoint_epoch
from bench.threads import threads_for_run
from storage.rows import LostClaim


@contextlib.contextmanager
def heartbeats(study, trials: list) -> Iterator[None]:
    """Optuna's heartbeat thread for each asked trial while the stack trains."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    threads = [get_heartbeat_thread(t._trial_id, study._storage) for t in trials]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for thread in threads:
            thread.join()


class StackedLoop:
    """Forms stacks from the queue of ``worker`` and trains them."""

    def __init__(self, worker: Any) -> None:  # a bench.scheduling.queue.QueueWorker
        self.worker = worker
        self.held_over: tuple | None = None  # an asked trial that starts the next stack
        self._limits: dict[str, int] = {}

    def _ask(self) -> tuple | None:
        """The next (trial, config), or None when the queue is empty."""
        import optuna
        from optuna.trial import TrialState

        if self.held_over is not None:
            asked, self.held_over = self.held_over, None
            return asked
        study = self.worker.study
        if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return None
        with warnings.catch_warnings():  # we run the heartbeat threads ourselves (heartbeats)
            warnings.filterwarnings("ignore", ".*Heartbeat of storage is supposed to be used.*")
            trial = study.ask()
        data = trial.user_attrs.get(CONFIG_ATTR)
        if data is None:  # not one of ours, or the queue emptied between look and ask
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return None
        return trial, RunConfig.from_json(data)

    def _key(self, config: RunConfig) -> tuple[str, int]:
        # Members must resume from the same epoch: the checkpoint epoch is part of the key.
        return stack_key(config), checkpoint_epoch(self.worker.runs_dir / config.config_hash())

    def limit(self, config: RunConfig) -> int:
        """How many runs like ``config`` the worker's policy stacks (cached per stack key)."""
        key = stack_key(config)
        if key not in self._limits:
            import methods
            from bench.pipeline import run_device
            from bench.resolve import training_plan

            worker = self.worker
            on_gpu = run_device(config, worker.device_index).type == "cuda"
            batch = training_plan(config, methods.get(config.method, **config.options)).batch_size
            self._limits[key] = stack_size(
                config, worker.stack, on_gpu, batch, worker.device_index
            )
        return self._limits[key]

    def next_is_alone(self) -> bool:
        """Whether the next waiting trial trains alone: then the plain loop takes it, so
        ``auto`` costs nothing where it does not stack."""
        from optuna.trial import TrialState

        if self.held_over is not None:
            return False
        waiting = self.worker.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        data = waiting[0].user_attrs.get(CONFIG_ATTR) if waiting else None
        return data is None or self.limit(RunConfig.from_json(data)) <= 1

    def next_stack(self) -> list[tuple]:
        """Up to the policy's size of asked trials with one key (empty: nothing waiting)."""
        first = self._ask()
        if first is None:
            return []
        config = first[1]
        limit = self.limit(config)
        key, stack = self._key(config), [first]
        while len(stack) < limit:
            asked = self._ask()
            if asked is None:
                break
            if self._key(asked[1]) != key:
                self.held_over = asked
                break
            stack.append(asked)
        return stack

    def train(self, stack: list[tuple]) -> None:
        """Claim each run, train the claimed ones as one stack, tell Optuna each outcome."""
        from bench.stacking.pipeline import run_stack

        worker = self.worker
        outcomes: dict[int, RunOutcome] = {}
        claimed: list[tuple[int, object]] = []
        for i, (trial, config) in enumerate(stack):
            held = worker._claim(config, trial)
            if held is None:
                outcomes[i] = RunOutcome(
                    config, "skipped", skipped=True, reason="done by another worker"
                )
            else:
                trial.set_user_attr(ATTEMPT_ATTR, held.attempt)
                claimed.append((i, held))
        torch.set_num_threads(worker.threads or threads_for_run(worker.max_threads))
        runs = [(stack[i][1], worker.ledger.recorder(held)) for i, held in claimed]
        try:
            with heartbeats(worker.study, [stack[i][0] for i, _ in claimed]):
                trained = run_stack(runs, worker.runs_dir, worker.progress, worker.device_index)
            outcomes.update({i: o for (i, _), o in zip(claimed, trained)})
        except LostClaim as lost:
            for i, held in claimed:
                with contextlib.suppress(LostClaim):
                    worker.ledger.release(held)
                outcomes[i] = RunOutcome(stack[i][1], "busy", reason=str(lost))
        except BaseException:
            for _, held in claimed:
                with contextlib.suppress(LostClaim):
                    worker.ledger.release(held)  # not a result of the runs: hand them back
            raise
        for i, (trial, _config) in enumerate(stack):
            self._tell(trial, outcomes[i])

    def _tell(self, trial, outcome: RunOutcome) -> None:
        from optuna.trial import TrialState

        worker = self.worker
        trial.set_user_attr(STATUS_ATTR, outcome.status)
        worker.outcomes.append(outcome)
        if worker.on_outcome is not None:
            worker.on_outcome(outcome)
        try:
            if outcome.status == "finished":
                worker.study.tell(trial, float(outcome.test_acc or 0.0))
            else:
                worker.study.tell(trial, state=TrialState.PRUNED)
        except ValueError as error:  # failed as stale meanwhile: the retry is another's
            if "Cannot tell a" not in str(error):
                raise
