"""Typed queries returning pandas DataFrames; filters are bound parameters, never string SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, Select, select

from storage.schema import (
    AllocationCostRow,
    EpochMetric,
    Failure,
    LayerAllocation,
    Run,
    SpectrumValue,
)
from storage.spec import method_spec

RUN_COLUMNS = [
    "id",
    "config_hash",
    "method",
    "arch",
    "dataset",
    "seed",
    "density",
    "achieved_density",
    "kept",
    "total",
    "status",
    "best_val_acc",
    "test_acc",
    "train_seconds",
    "reason",
    "resumed",
    "attempts",
]
# Columns that say which run a per-run detail row belongs to. ``options`` is folded into
# ``method`` by :func:`_frame`, so a method run with other options is a separate series.
RUN_KEYS = (Run.method, Run.options, Run.arch, Run.dataset, Run.density, Run.seed)


@dataclass(frozen=True)
class RunFilter:
    """Optional filters on runs; each list means 'any of these'."""

    methods: Sequence[str] | None = None
    archs: Sequence[str] | None = None
    datasets: Sequence[str] | None = None
    densities: Sequence[float] | None = None
    statuses: Sequence[str] | None = None
    config_hashes: Sequence[str] | None = None  # exactly these runs (a grid's), when given

    def apply(self, stmt: Select) -> Select:
        for column, values in (
            (Run.config_hash, self.config_hashes),
            (Run.method, self.methods),
            (Run.arch, self.archs),
            (Run.dataset, self.datasets),
            (Run.density, self.densities),
            (Run.status, self.statuses),
        ):
            if values:
                stmt = stmt.where(column.in_(list(values)))
        return stmt


def runs(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """One row per run with the main columns, ordered by id."""
    stmt = select(*(getattr(Run, c) for c in RUN_COLUMNS), Run.options).order_by(Run.id)
    return _frame(engine, stmt, where)


def accuracy(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """Test accuracy of finished runs aggregated by arch x dataset x method x density.

    Columns: arch, dataset, method, density, mean, std, n, min, max (std is 0 for one run).
    """
    frame = runs(engine, where)
    frame = frame[frame["status"] == "finished"]
    keys = ["arch", "dataset", "method", "density"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n", "min", "max"])
    grouped = frame.groupby(keys)["test_acc"]
    out = grouped.agg(["mean", "std", "count", "min", "max"]).reset_index()
    out = out.rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    return out


def _frame(engine: Engine, stmt: Select, where: RunFilter | None) -> pd.DataFrame:
    stmt = (where or RunFilter()).apply(stmt)
    with engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if "options" in frame.columns:
        frame["method"] = [method_spec(m, o) for m, o in zip(frame["method"], frame["options"])]
        frame = frame.drop(columns="options")
    return frame


def layer_allocation(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """Kept/total per prunable layer (and DCTpS alphas) for every run matching ``where``."""
    stmt = (
        select(
            Run.id.label("run_id"),
            *RUN_KEYS,
            LayerAllocation.layer_index,
            LayerAllocation.name,
            LayerAllocation.kept,
            LayerAllocation.total,
            LayerAllocation.alpha_init,
            LayerAllocation.alpha_final,
        )
        .join(LayerAllocation, LayerAllocation.run_id == Run.id)
        .order_by(Run.id, LayerAllocation.layer_index)
    )
    return _frame(engine, stmt, where)


def allocation_cost(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """Allocation seconds, peak bytes and passes per run."""
    stmt = (
        select(
            Run.id.label("run_id"),
            *RUN_KEYS,
            Run.trainable_params,
            AllocationCostRow.seconds,
            AllocationCostRow.peak_bytes,
            AllocationCostRow.forward_passes,
            AllocationCostRow.backward_passes,
        )
        .join(AllocationCostRow, AllocationCostRow.run_id == Run.id)
        .order_by(Run.id)
    )
    return _frame(engine, stmt, where)


def spectra(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """Top singular values of the input-output Jacobian at initialisation, one row per rank.

    ``rank`` 0 is the largest; runs trained without ``--spectrum`` have no rows.
    """
    stmt = (
        select(Run.id.label("run_id"), *RUN_KEYS, SpectrumValue.rank, SpectrumValue.value)
        .join(SpectrumValue, SpectrumValue.run_id == Run.id)
        .order_by(Run.id, SpectrumValue.rank)
    )
    return _frame(engine, stmt, where)


def epoch_metrics(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """Training loss, validation accuracy, learning rate and wall seconds per run and epoch."""
    stmt = (
        select(
            Run.id.label("run_id"),
            *RUN_KEYS,
            EpochMetric.epoch,
            EpochMetric.train_loss,
            EpochMetric.val_acc,
            EpochMetric.lr,
            EpochMetric.seconds,
        )
        .join(EpochMetric, EpochMetric.run_id == Run.id)
        .order_by(Run.id, EpochMetric.epoch)
    )
    return _frame(engine, stmt, where)


def failures(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """Every recorded failure: stage, reason, exception type and traceback digest."""
    stmt = (
        select(
            Run.id.label("run_id"),
            *RUN_KEYS,
            Failure.stage,
            Failure.reason,
            Failure.exception_type,
            Failure.traceback_digest,
            Failure.created_at,
        )
        .join(Failure, Failure.run_id == Run.id)
        .order_by(Run.id, Failure.id)
    )
    return _frame(engine, stmt, where)


BUDGET_KEYS = ("preset", "epochs", "batch_size", "train_subset")


def budgets(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """Runs per training budget (preset, epochs, batch size, train subset) per arch x dataset.

    Accuracy is aggregated over every run of a method and density, whatever its budget; this
    query shows where a database mixes budgets (the report warns about it).
    """
    stmt = select(Run.arch, Run.dataset, Run.config).order_by(Run.id)
    frame = _frame(engine, stmt, where)
    keys = ["arch", "dataset", *BUDGET_KEYS]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "runs"])
    for key in BUDGET_KEYS:
        frame[key] = [str((config or {}).get(key)) for config in frame["config"]]
    return frame.groupby(keys).size().rename("runs").reset_index()
