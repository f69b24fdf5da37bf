"""Run orchestration: resolve a config, claim it, allocate, apply, train, and record everything.

Claiming is the one mechanism that makes every config train exactly once, whatever runs it (one
``bench run``, ``bench run --workers N``, ``bench worker`` on many machines):

- the first claim INSERTs the run's row (``status='running'``, ``attempts=1``); the unique
  ``config_hash`` makes every concurrent INSERT but one fail;
- a row that exists is taken over only if it is ``pending``, or ``running`` under a dead worker
  (same host: its pid is gone; any host: its heartbeat is older than ``stale_after``), by an
  ``UPDATE ... WHERE attempts = <the attempt we saw>``: a compare-and-set only one worker wins;
- while a run is held a thread refreshes ``heartbeat_at``, and every write a worker makes is
  fenced on its attempt number, so a worker whose run was taken over can no longer write.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from torch import nn

import architectures
import methods
from bench.config import RunConfig, stream_seed
from bench.data import dataset_spec, make_datamodule
from bench.errors import BenchError
from bench.presets import get_preset
from bench.spectrum import jacobian_spectrum, spectrum_batch
from bench.training import EpochRecord, PaIModule, TrainResult, fit_and_test
from storage import session_scope
from storage.schema import (
    AllocationCostRow,
    EpochMetric,
    Failure,
    LayerAllocation,
    Run,
    SpectrumValue,
    utcnow,
)

DEFAULT_RUNS_DIR = Path("runs")
BASELINE_METHOD = "dense"
DONE_STATUSES = ("finished", "failed")


@dataclass(frozen=True)
class ClaimPolicy:
    """How often a held run's heartbeat is refreshed, and when a silent holder counts as dead."""

    heartbeat_interval: float = 10.0
    stale_after: float = 120.0
    poll: float = 1.0  # seconds between looks at runs held by other (live) workers


DEFAULT_POLICY = ClaimPolicy()


@dataclass(frozen=True)
class Claim:
    """A run this process holds: its row and the attempt number that fences its writes."""

    run_id: int
    attempt: int


class LostClaim(Exception):
    """Another worker took the run over (this one was thought dead): stop, write nothing."""


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one config.

    ``status``: ``finished`` or ``failed`` (trained here), ``skipped`` (already in the database),
    ``busy`` (held by another live worker, or taken over by one).
    """

    config: RunConfig
    status: str
    test_acc: float | None = None
    reason: str | None = None
    skipped: bool = False


def canonical_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Typed options of ``method`` minus those equal to their default (keeps hashes stable)."""
    instance = methods.get(method, **options)
    defaults = {info.name: info.default for info in methods.options_of(type(instance))}
    resolved = instance.options()
    return {k: resolved[k] for k in sorted(options) if resolved.get(k) != defaults.get(k)}


def validate(config: RunConfig) -> RunConfig:
    """Check every name and value of ``config``; raise BenchError naming the bad one."""
    spec = dataset_spec(config.dataset)
    try:
        architectures.spec(config.arch)
        options = canonical_options(config.method, config.options)
        methods.check_density(config.density)
    except (methods.UnknownMethod, architectures.UnknownArchitecture, ValueError) as error:
        raise BenchError(str(error)) from None
    module = spec.module
    arch = architectures.spec(config.arch)
    if not arch.accepts(module.input_shape):
        raise BenchError(
            f"architecture {config.arch!r} does not accept {config.dataset!r} inputs "
            f"{module.input_shape} (it accepts {arch.accepts_text})"
        )
    get_preset(config.preset, config.arch)
    # The budget is resolved now so that the stored config (and its hash) says what really ran.
    return replace(config, options=options, epochs=effective_epochs(config))


def effective_epochs(config: RunConfig) -> int:
    """--epochs if given, else the data set's CPU default, else the preset's (paper) epochs."""
    if config.epochs is not None:
        return config.epochs
    default = dataset_spec(config.dataset).default_epochs
    return default if default is not None else get_preset(config.preset, config.arch).epochs


def expand_grid(
    *,
    archs: Sequence[str],
    datasets: Sequence[str],
    method_specs: Sequence[tuple[str, dict[str, Any]]],
    densities: Sequence[float],
    seeds: Sequence[int],
    baseline: bool = True,
    **common: Any,
) -> list[RunConfig]:
    """The product of the lists as validated configs, a dense baseline per arch x dataset x seed."""
    configs: list[RunConfig] = []
    for arch, dataset, seed in itertools.product(archs, datasets, seeds):
        if baseline:
            configs.append(RunConfig(arch, dataset, BASELINE_METHOD, 1.0, seed, **common))
        for (method, options), density in itertools.product(method_specs, densities):
            if method == BASELINE_METHOD:
                continue
            configs.append(RunConfig(arch, dataset, method, density, seed, dict(options), **common))
    unique: dict[str, RunConfig] = {}
    for config in configs:
        config = validate(config)
        unique.setdefault(config.config_hash(), config)
    return list(unique.values())


# Claims ---------------------------------------------------------------------------------------


def worker_id() -> str:
    """``host:pid`` of this process, as stored in ``runs.worker``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def holder_alive(
    worker: str | None, last_seen: datetime | None, policy: ClaimPolicy = DEFAULT_POLICY
) -> bool:
    """Whether the worker holding a ``running`` row may still be working on it.

    On this host the answer is exact (is its pid alive? this very process holds nothing between
    runs, so a row in its own name is left over from an interrupted attempt); elsewhere the
    row's heartbeat must be younger than ``policy.stale_after``.
    """
    host, _, pid = (worker or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return int(pid) != os.getpid() and _pid_alive(int(pid))
    if last_seen is None:
        return False
    return (utcnow() - _aware(last_seen)).total_seconds() < policy.stale_after


def claim(
    engine: Engine,
    config: RunConfig,
    policy: ClaimPolicy = DEFAULT_POLICY,
    *,
    takeover_attempt: int | None = None,
) -> Claim | Literal["done", "busy"]:
    """Claim ``config`` for this process (see the module docstring for the protocol).

    ``takeover_attempt``: the attempt a scheduler (Optuna's heartbeat) already declared dead;
    a row still at that attempt is taken over even if its holder looks alive from here.
    """
    config_hash, now, me = config.config_hash(), utcnow(), worker_id()
    try:
        with session_scope(engine) as session:
            run = Run(
                config_hash=config_hash,
                config=config.to_json(),
                method=config.method,
                options=config.options,
                arch=config.arch,
                dataset=config.dataset,
                seed=config.seed,
                density=config.density,
                status="running",
                attempts=1,
                worker=me,
                started_at=now,
                heartbeat_at=now,
            )
            session.add(run)
            session.flush()
            return Claim(run.id, 1)
    except IntegrityError:
        pass  # the row exists: see whether it can be taken over
    with session_scope(engine) as session:
        row = session.execute(
            select(
                Run.id, Run.status, Run.worker, Run.attempts, Run.heartbeat_at, Run.started_at
            ).where(Run.config_hash == config_hash)
        ).one()
        if row.status in DONE_STATUSES:
            return "done"
        if (
            row.status == "running"
            and row.attempts != takeover_attempt
            and holder_alive(row.worker, row.heartbeat_at or row.started_at, policy)
        ):
            return "busy"
        taken = session.execute(
            update(Run)
            .where(
                Run.id == row.id,
                Run.attempts == row.attempts,
                Run.status.in_(("pending", "running")),
            )
            .values(
                status="running",
                attempts=row.attempts + 1,
                worker=me,
                started_at=now,
                heartbeat_at=now,
                reason=None,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        return Claim(row.id, row.attempts + 1) if taken == 1 else "busy"


@contextmanager
def _owned(engine: Engine, held: Claim) -> Iterator[tuple[Session, Run]]:
    """A session on our run row, fenced on our attempt (LostClaim if another worker took it).

    The fencing UPDATE also refreshes the heartbeat, and comes first so that the transaction
    holds the row (PostgreSQL) or the write lock (SQLite) for the writes that follow.
    """
    with session_scope(engine) as session:
        fenced = session.execute(
            update(Run)
            .where(Run.id == held.run_id, Run.attempts == held.attempt)
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if fenced != 1:
            raise LostClaim(f"run {held.run_id} was taken over by another worker")
        run = session.get(Run, held.run_id)
        assert run is not None
        yield session, run


class Heartbeat:
    """Refreshes a held run's ``heartbeat_at`` (and ``extra``, e.g. Optuna's) every interval."""

    def __init__(
        self,
        engine: Engine,
        held: Claim,
        interval: float,
        extra: Callable[[], None] | None = None,
    ) -> None:
        self.engine, self.held, self.interval, self.extra = engine, held, interval, extra
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="paibench-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with session_scope(self.engine) as session:
                    session.execute(
                        update(Run)
                        .where(Run.id == self.held.run_id, Run.attempts == self.held.attempt)
                        .values(heartbeat_at=utcnow())
                        .execution_options(synchronize_session=False)
                    )
                if self.extra is not None:
                    self.extra()
            except Exception:  # a missed beat is not fatal; the next one may get through
                continue

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _release(engine: Engine, held: Claim) -> None:
    """Hand an interrupted run back (``pending``), so the next launch starts it at once."""
    with contextlib.suppress(Exception), _owned(engine, held) as (_, run):
        run.status, run.worker = "pending", None


# Recording ------------------------------------------------------------------------------------


def _traceback_digest(error: BaseException) -> str:
    frames = traceback.format_exception(type(error), error, error.__traceback__)
    return hashlib.sha256("".join(frames).encode()).hexdigest()[:16]


def _alphas(model: nn.Module) -> dict[str, float]:
    """DCTpS layers' alpha by prunable-weight name (``<module>.weight``)."""
    return {
        f"{name}.weight": float(module.alpha.detach())
        for name, module in model.named_modules()
        if isinstance(getattr(module, "alpha", None), torch.Tensor) and module.alpha.numel() == 1
    }


def record_failure(engine: Engine, held: Claim, stage: str, error: BaseException) -> str:
    """Mark the run ``failed`` with its reason and add a failures row; returns the reason."""
    reason = getattr(error, "reason", None) or str(error) or type(error).__name__
    with _owned(engine, held) as (session, run):
        run.status, run.reason, run.finished_at = "failed", reason, utcnow()
        session.add(
            Failure(
                run_id=run.id,
                stage=stage,
                reason=reason,
                exception_type=type(error).__name__,
                traceback_digest=_traceback_digest(error),
            )
        )
    return reason


def _record_allocation(
    engine: Engine, held: Claim, allocation: methods.Allocation, trainable: int
) -> None:
    with _owned(engine, held) as (session, run):
        run.kept, run.total = allocation.kept, allocation.total
        run.achieved_density = allocation.achieved_density
        run.trainable_params = trainable
        run.layers.clear()
        run.cost = None
        session.flush()
        for index, layer in enumerate(allocation.layers()):
            run.layers.append(
                LayerAllocation(
                    layer_index=index, name=layer.name, kept=layer.kept, total=layer.total
                )
            )
        cost = allocation.cost
        if cost is not None:
            run.cost = AllocationCostRow(
                seconds=cost.seconds,
                peak_bytes=cost.peak_bytes,
                forward_passes=cost.forward_passes,
                backward_passes=cost.backward_passes,
                memory_source=cost.memory_source,
                info=_jsonable(allocation.info),
            )


def _record_spectrum(engine: Engine, held: Claim, values: torch.Tensor) -> None:
    with _owned(engine, held) as (session, run):
        for row in session.scalars(select(SpectrumValue).where(SpectrumValue.run_id == run.id)):
            session.delete(row)
        session.flush()
        session.add_all(
            SpectrumValue(run_id=run.id, rank=rank, value=float(value))
            for rank, value in enumerate(values.tolist())
        )


def _record_epoch(engine: Engine, held: Claim, record: EpochRecord) -> None:
    """Store one epoch as it ends (replacing the row a killed attempt left for it)."""
    with _owned(engine, held) as (session, run):
        row = session.scalars(
            select(EpochMetric).where(
                EpochMetric.run_id == run.id, EpochMetric.epoch == record.epoch
            )
        ).first()
        if row is None:
            row = EpochMetric(run_id=run.id, epoch=record.epoch)
            session.add(row)
        row.train_loss, row.val_acc, row.lr = record.train_loss, record.val_acc, record.lr
        row.seconds, row.recorded_at = record.seconds, utcnow()


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in info.items():
        out[key] = (
            value
            if isinstance(value, str | int | float | bool | type(None) | list | dict)
            else str(value)
        )
    return out


def _record_result(
    engine: Engine,
    held: Claim,
    result: TrainResult,
    epochs: int,
    alpha_init: dict[str, float],
    alpha_final: dict[str, float],
) -> None:
    with _owned(engine, held) as (_, run):
        run.status = "finished"
        run.best_val_acc, run.test_acc = result.best_val_acc, result.test_acc
        run.train_seconds = result.seconds
        run.epochs, run.resumed, run.finished_at = epochs, result.resumed, utcnow()
        # Every epoch of every attempt is in the table; the best is chosen over all of them.
        stored = [m for m in run.epoch_metrics if m.val_acc is not None]
        run.best_epoch = max(stored, key=lambda m: m.val_acc).epoch if stored else result.best_epoch
        for layer in run.layers:
            layer.alpha_init = alpha_init.get(layer.name)
            layer.alpha_final = alpha_final.get(layer.name)


# One run --------------------------------------------------------------------------------------


def run_config(
    config: RunConfig,
    engine: Engine,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    progress: bool = False,
    *,
    policy: ClaimPolicy = DEFAULT_POLICY,
    takeover_attempt: int | None = None,
    on_claim: Callable[[Claim], None] | None = None,
    extra_heartbeat: Callable[[], None] | None = None,
) -> RunOutcome:
    """Claim ``config`` and train it end to end; failures become rows, never exceptions.

    Returns ``skipped`` when the database already holds the run and ``busy`` when another live
    worker holds it. An environment error (BenchError, a missing data file) or an interrupt
    hands the run back as ``pending`` and propagates: it is not a result of the run.
    """
    held = claim(engine, config, policy, takeover_attempt=takeover_attempt)
    if held == "done":
        return RunOutcome(config, "skipped", skipped=True)
    if held == "busy":
        return RunOutcome(config, "busy")
    if on_claim is not None:
        on_claim(held)
    with Heartbeat(engine, held, policy.heartbeat_interval, extra_heartbeat):
        try:
            return _train(config, engine, held, runs_dir, progress)
        except LostClaim as lost:
            return RunOutcome(config, "busy", reason=str(lost))
        except (BenchError, FileNotFoundError, KeyboardInterrupt):
            _release(engine, held)
            raise


def _train(
    config: RunConfig, engine: Engine, held: Claim, runs_dir: Path, progress: bool
) -> RunOutcome:
    config_hash = config.config_hash()
    stage = "setup"
    try:
        preset = get_preset(config.preset, config.arch)
        epochs = effective_epochs(config)
        datamodule = make_datamodule(
            config.dataset,
            batch_size=config.batch_size or preset.batch_size,
            seed=config.seed,
            train_subset=config.train_subset,
            data_dir=config.data_dir,
            download=config.download,
        )
        datamodule.setup()
        model = architectures.build(
            config.arch,
            datamodule.num_classes,
            input_shape=datamodule.input_shape,
            seed=stream_seed(config.seed, "init"),
        )
        stage = "allocation"
        method = methods.get(config.method, **config.options)
        context = methods.AllocationContext(
            batches=datamodule.allocation_batches() if method.needs_data else None,
            generator=torch.Generator().manual_seed(stream_seed(config.seed, "allocation")),
            input_shape=datamodule.input_shape,
            num_classes=datamodule.num_classes,
            dataset=config.dataset,
        )
        allocation = method.allocate(model, config.density, context=context)
        model = allocation.apply(model)
        alpha_init = _alphas(model)
        _record_allocation(engine, held, allocation, methods.trainable_parameter_count(model))
        if config.spectrum:
            stage = "spectrum"
            batch = spectrum_batch(datamodule.x_train, stream_seed(config.seed, "spectrum"))
            _record_spectrum(engine, held, jacobian_spectrum(model, batch))
        stage = "training"
        module = PaIModule(
            model, preset, epochs, preset.lr_for(config.method), datamodule.num_classes
        )
        result = fit_and_test(
            module,
            datamodule,
            epochs=epochs,
            run_dir=runs_dir / config_hash,
            accelerator=config.accelerator,
            progress=progress,
            on_epoch=lambda record: _record_epoch(engine, held, record),
        )
    except (LostClaim, BenchError, FileNotFoundError):
        raise
    except Exception as error:
        reason = record_failure(engine, held, stage, error)
        return RunOutcome(config, "failed", reason=reason)
    _record_result(engine, held, result, epochs, alpha_init, _alphas(model))
    return RunOutcome(config, "finished", test_acc=result.test_acc)


# Grids ----------------------------------------------------------------------------------------


def drain(
    configs: Sequence[RunConfig],
    engine: Engine,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    *,
    policy: ClaimPolicy = DEFAULT_POLICY,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    on_start: Callable[[RunConfig], None] | None = None,
    **run_options: Any,
) -> list[RunOutcome]:
    """Run every config this process can claim until each is finished or failed somewhere.

    Configs held by other live workers are looked at again every ``policy.poll`` seconds, so a
    run whose worker dies is taken over here. Returns one outcome per config; a config another
    worker completed while we waited comes back ``skipped`` with reason "done by another
    worker". ``run_options`` go to :func:`run_config`.
    """
    outcomes: dict[str, RunOutcome] = {}
    waited: set[str] = set()
    pending = list(configs)
    while pending:
        busy: list[RunConfig] = []
        for config in pending:
            if on_start is not None:
                on_start(config)
            outcome = run_config(config, engine, runs_dir, policy=policy, **run_options)
            key = config.config_hash()
            if outcome.status == "busy":
                busy.append(config)
                waited.add(key)
                continue
            if outcome.skipped and key in waited:
                outcome = replace(outcome, reason="done by another worker")
            outcomes[key] = outcome
            if on_outcome is not None:
                on_outcome(outcome)
        pending = busy
        if pending:
            time.sleep(policy.poll)
    return [outcomes[c.config_hash()] for c in configs]


def summary_line(config: RunConfig, status: str, test_acc: float | None, reason: str | None) -> str:
    """The one line printed for each run trained."""
    detail = f"test_acc={test_acc:.4f}" if status == "finished" else f"reason: {reason}"
    return (
        f"{status:8s} {config.arch}/{config.dataset} {config.method_spec:24s} "
        f"density={config.density:<8g} seed={config.seed} {detail}"
    )


def run_grid(
    configs: Iterable[RunConfig],
    engine: Engine,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    *,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
    workers: int = 1,
    policy: ClaimPolicy = DEFAULT_POLICY,
    threads: int | None = None,
) -> list[RunOutcome]:
    """Run a grid with a progress bar and a line per run; ``workers`` > 1 uses processes.

    Ends by saying how many runs were skipped because the database already had them.
    """
    configs = list(configs)
    if workers != 1:
        from bench.workers import run_parallel

        return run_parallel(
            configs,
            engine,
            runs_dir,
            workers=workers,
            policy=policy,
            show_progress=show_progress,
            echo=echo,
            threads=threads,
        )
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(configs), desc="grid", unit="run", disable=not show_progress, dynamic_ncols=True
    )

    def start(config: RunConfig) -> None:
        bar.set_postfix_str(f"{config.method_spec} d={config.density:g} seed={config.seed}")

    def done(outcome: RunOutcome) -> None:
        bar.update()
        if not outcome.skipped:
            line = summary_line(outcome.config, outcome.status, outcome.test_acc, outcome.reason)
            (bar.write if show_progress else echo)(line)

    try:
        outcomes = drain(configs, engine, runs_dir, policy=policy, on_outcome=done, on_start=start)
    finally:
        bar.close()
    skipped = sum(o.skipped and o.reason is None for o in outcomes)
    if skipped:
        echo(f"skipped {skipped} of {len(outcomes)} runs already in the database")
    return outcomes
