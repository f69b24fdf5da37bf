"""Fill ``epoch_metrics.steps`` of rows recorded before revision 0005 (the count of optimizer
steps by each epoch's end), from a steps-per-epoch figure the caller computes per run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from storage.db import session_scope
from storage.schema import EpochMetric, Run


def runs_without_steps(engine: Engine) -> dict[int, tuple[dict[str, Any], bool]]:
    """``{run id: (stored config, recorded with provenance)}`` of every run with an epoch row
    whose steps are unknown. Runs without provenance (no ``paibench_version``) predate it."""
    stmt = (
        select(Run.id, Run.config, Run.paibench_version.is_not(None))
        .join(EpochMetric, EpochMetric.run_id == Run.id)
        .where(EpochMetric.steps.is_(None))
        .distinct()
    )
    with session_scope(engine) as session:
        rows = session.execute(stmt).all()
    return {
        run_id: (json.loads(config) if isinstance(config, str) else config, bool(recorded))
        for run_id, config, recorded in rows
    }


def fill_steps(engine: Engine, per_epoch: Mapping[int, int]) -> int:
    """Set ``steps = (epoch + 1) * per_epoch[run]`` where unknown; returns the rows filled."""
    filled = 0
    with session_scope(engine) as session:
        for run_id, steps in per_epoch.items():
            result = session.execute(
                update(EpochMetric)
                .where(EpochMetric.run_id == run_id, EpochMetric.steps.is_(None))
                .values(steps=(EpochMetric.epoch + 1) * steps)
            )
            filled += result.rowcount or 0
    return filled
