"""The ledger: claims a run's row and writes what the run reports, from plain rows.

It imports nothing of the project but ``storage`` itself. Claiming is the guard that makes every
config train exactly once whoever schedules it:

- the first claim INSERTs the run's row (``status='running'``, ``attempts=1``); the unique
  ``config_hash`` makes every concurrent INSERT but one fail;
- a row that exists is taken over only if it is ``pending``, or ``running`` under a holder the
  scheduler declares dead (``alive(worker)`` is false, or the scheduler names the dead attempt
  in ``takeover_attempt``), by an ``UPDATE ... WHERE attempts = <the attempt we saw>``: a
  compare-and-set that only one worker wins;
- every write a worker makes is fenced on its attempt number, so a worker whose run was taken
  over can no longer write (:class:`~storage.rows.LostClaim`).

Liveness is the scheduler's (Optuna's trial heartbeats): the ledger never probes processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import session_scope
from storage.rows import (
    AllocationRow,
    EpochRow,
    FailureRow,
    LostClaim,
    ProvenanceRow,
    ResultRow,
    RunIdentity,
)
from storage.schema import (
    AllocationCostRow,
    EpochMetric,
    Failure,
    LayerAllocation,
    Run,
    SpectrumValue,
    utcnow,
)

DONE_STATUSES = ("finished", "failed")
Status = tuple[str, float | None, str | None]


@dataclass(frozen=True)
class Claim:
    """A run this process holds: its row and the attempt number that fences its writes."""

    run_id: int
    attempt: int


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _never_dead(worker: str | None) -> bool:
    return True


class Ledger:
    """Claims and writes on the ``runs`` table (and its child tables) of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # Claims -----------------------------------------------------------------------------------

    def claim(
        self,
        identity: RunIdentity,
        holder: str,
        *,
        alive: Callable[[str | None], bool] = _never_dead,
        takeover_attempt: int | None = None,
    ) -> Claim | Literal["done", "busy"]:
        """Claim the run of ``identity`` for ``holder`` (see the module docstring)."""
        now = utcnow()
        try:
            with session_scope(self.engine) as session:
                run = Run(
                    config_hash=identity.config_hash,
                    config=identity.config,
                    method=identity.method,
                    options=identity.options,
                    arch=identity.arch,
                    dataset=identity.dataset,
                    seed=identity.seed,
                    density=identity.density,
                    status="running",
                    attempts=1,
                    worker=holder,
                    started_at=now,
                    heartbeat_at=now,
                )
                session.add(run)
                session.flush()
                return Claim(run.id, 1)
        except IntegrityError:
            pass  # the row exists: see whether it can be taken over
        with session_scope(self.engine) as session:
            row = session.execute(
                select(Run.id, Run.status, Run.worker, Run.attempts).where(
                    Run.config_hash == identity.config_hash
                )
            ).one()
            if row.status in DONE_STATUSES:
                return "done"
            if (
                row.status == "running"
                and row.attempts != takeover_attempt
                and alive(row.worker)
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
                    worker=holder,
                    started_at=now,
                    heartbeat_at=now,
                    reason=None,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            return Claim(row.id, row.attempts + 1) if taken == 1 else "busy"

    @contextmanager
    def _owned(self, held: Claim) -> Iterator[tuple[Session, Run]]:
        """A session on our run row, fenced on our attempt (LostClaim if another took it).

        The fencing UPDATE comes first so that the transaction holds the row (PostgreSQL) or
        the write lock (SQLite) for the writes that follow; it stamps ``heartbeat_at``, the
        time of the holder's last write.
        """
        with session_scope(self.engine) as session:
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

    def release(self, held: Claim) -> None:
        """Hand an interrupted run back (``pending``), so the next launch starts it at once."""
        with contextlib.suppress(Exception), self._owned(held) as (_, run):
            run.status, run.worker = "pending", None

    def statuses(self, hashes: Sequence[str]) -> dict[str, Status]:
        """``config_hash -> (status, test_acc, reason)`` for the stored runs of ``hashes``."""
        found: dict[str, Status] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(hashes), 500):
                rows = conn.execute(
                    select(Run.config_hash, Run.status, Run.test_acc, Run.reason).where(
                        Run.config_hash.in_(hashes[start : start + 500])
                    )
                )
                found.update((h, (s, acc, reason)) for h, s, acc, reason in rows)
        return found

    def run_id(self, config_hash: str) -> int | None:
        """The id of the run stored under ``config_hash``, if any."""
        with session_scope(self.engine) as session:
            return session.scalar(select(Run.id).where(Run.config_hash == config_hash))

    def recorder(self, held: Claim) -> RunRecorder:
        """The writer of one held run, for the pipeline."""
        return RunRecorder(self, held)

    # Writes -------------------------------------------------------------------------------------

    def record_provenance(self, held: Claim, row: ProvenanceRow) -> None:
        """Store who trained the run; an attempt that takes a run over writes its own."""
        with self._owned(held) as (_, run):
            for name, value in dataclasses.asdict(row).items():
                setattr(run, name, value)

    def record_allocation(self, held: Claim, row: AllocationRow) -> None:
        with self._owned(held) as (session, run):
            run.kept, run.total = row.kept, row.total
            run.achieved_density = row.achieved_density
            run.trainable_params = row.trainable_params
            run.layers.clear()
            run.cost = None
            session.flush()
            for index, layer in enumerate(row.layers):
                run.layers.append(
                    LayerAllocation(
                        layer_index=index, name=layer.name, kept=layer.kept, total=layer.total
                    )
                )
            if row.cost is not None:
                cost = row.cost
                run.cost = AllocationCostRow(
                    seconds=cost.seconds,
                    peak_bytes=cost.peak_bytes,
                    forward_passes=cost.forward_passes,
                    backward_passes=cost.backward_passes,
                    memory_source=cost.memory_source,
                    info=_jsonable(cost.info),
                )

    def record_spectrum(self, held: Claim, values: Sequence[float]) -> None:
        with self._owned(held) as (session, run):
            stored = select(SpectrumValue).where(SpectrumValue.run_id == run.id)
            for old in session.scalars(stored):
                session.delete(old)
            session.flush()
            session.add_all(
                SpectrumValue(run_id=run.id, rank=rank, value=float(value))
                for rank, value in enumerate(values)
            )

    def record_epoch(self, held: Claim, row: EpochRow) -> None:
        """Store one epoch as it ends (replacing the row a killed attempt left for it)."""
        with self._owned(held) as (session, run):
            metric = session.scalars(
                select(EpochMetric).where(
                    EpochMetric.run_id == run.id, EpochMetric.epoch == row.epoch
                )
            ).first()
            if metric is None:
                metric = EpochMetric(run_id=run.id, epoch=row.epoch)
                session.add(metric)
            metric.train_loss, metric.val_acc, metric.lr = row.train_loss, row.val_acc, row.lr
            metric.seconds, metric.recorded_at = row.seconds, utcnow()
            metric.steps = row.steps

    def record_result(self, held: Claim, row: ResultRow) -> None:
        with self._owned(held) as (_, run):
            run.status = "finished"
            run.best_val_acc, run.test_acc = row.best_val_acc, row.test_acc
            run.train_seconds = row.train_seconds
            run.epochs, run.resumed, run.finished_at = row.epochs, row.resumed, utcnow()
            run.deterministic = not row.nondeterministic_ops
            run.nondeterministic_ops = ", ".join(row.nondeterministic_ops) or None
            run.stack = row.stack
            # Every epoch of every attempt is in the table; the best is chosen over all of them.
            stored = [m for m in run.epoch_metrics if m.val_acc is not None]
            best = max(stored, key=lambda m: m.val_acc).epoch if stored else row.best_epoch
            run.best_epoch = best
            for layer in run.layers:
                layer.alpha_init = row.alpha_init.get(layer.name)
                layer.alpha_final = row.alpha_final.get(layer.name)

    def record_failure(self, held: Claim, row: FailureRow) -> None:
        """Mark the run ``failed`` with its reason and add a failures row."""
        with self._owned(held) as (session, run):
            run.status, run.reason, run.finished_at = "failed", row.reason, utcnow()
            session.add(
                Failure(
                    run_id=run.id,
                    stage=row.stage,
                    reason=row.reason,
                    exception_type=row.exception_type,
                    traceback_digest=row.traceback_digest,
                )
            )


class RunRecorder:
    """The ledger's writes for one held run: the recorder the pipeline reports through."""

    def __init__(self, ledger: Ledger, held: Claim) -> None:
        self.ledger, self.held = ledger, held

    def started(self, row: ProvenanceRow) -> None:
        self.ledger.record_provenance(self.held, row)

    def allocation(self, row: AllocationRow) -> None:
        self.ledger.record_allocation(self.held, row)

    def spectrum(self, values: Sequence[float]) -> None:
        self.ledger.record_spectrum(self.held, values)

    def epoch(self, row: EpochRow) -> None:
        self.ledger.record_epoch(self.held, row)

    def finished(self, row: ResultRow) -> None:
        self.ledger.record_result(self.held, row)

    def failed(self, row: FailureRow) -> None:
        self.ledger.record_failure(self.held, row)


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    plain = str | int | float | bool | type(None) | list | dict
    return {key: value if isinstance(value, plain) else str(value) for key, value in info.items()}
