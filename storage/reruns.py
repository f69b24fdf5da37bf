"""Re-running stored runs: failed ones after a fix, or those recorded by older code."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Engine, select

from storage.db import session_scope
from storage.ledger import DONE_STATUSES
from storage.schema import Run, SpectrumValue


def reopen(
    engine: Engine,
    hashes: Sequence[str],
    *,
    failed_reason: str | None = None,
    older_than: Callable[[str | None], bool] | None = None,
) -> list[str]:
    """Hand stored runs of ``hashes`` back (``pending``, results cleared) to be trained again.

    ``failed_reason``: failed runs whose reason contains it ("" for every failed run);
    ``older_than``: finished or failed runs whose ``paibench_version`` it accepts. Their
    failures rows stay (the history of the config); epochs, layers, cost and spectra go,
    since the next attempt starts over. Returns the hashes reopened.
    """
    reopened: list[str] = []
    with session_scope(engine) as session:
        for start in range(0, len(hashes), 500):
            chunk = list(hashes[start : start + 500])
            stored = session.scalars(
                select(Run).where(Run.config_hash.in_(chunk), Run.status.in_(DONE_STATUSES))
            )
            for run in stored:
                retry = (
                    failed_reason is not None
                    and run.status == "failed"
                    and failed_reason in (run.reason or "")
                )
                rerun = older_than is not None and older_than(run.paibench_version)
                if not (retry or rerun):
                    continue
                run.status, run.reason, run.worker = "pending", None, None
                run.best_val_acc = run.test_acc = run.best_epoch = None
                run.train_seconds = run.finished_at = None
                run.resumed = False
                run.epoch_metrics.clear()
                run.layers.clear()
                run.cost = None
                for value in session.scalars(
                    select(SpectrumValue).where(SpectrumValue.run_id == run.id)
                ):
                    session.delete(value)
                reopened.append(run.config_hash)
    return reopened
