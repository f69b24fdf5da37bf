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
from storage.spec import BUDGET_FIELDS, budget_label, method_spec

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
    "trainable_params",
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
# ``config`` is turned into the budget columns (preset, epochs, ..., budget) by :func:`_frame`.
RUN_KEYS = (Run.method, Run.options, Run.arch, Run.dataset, Run.density, Run.seed, Run.config)
PROVENANCE_COLUMNS = [
    "paibench_version",
    "git_commit",
    "git_dirty",
    "python_version",
    "torch_version",
    "cuda_version",
    "device",
    "host",
    "threads",
    "num_classes",
    "deterministic",
    "nondeterministic_ops",
    "stack",
]


@dataclass(frozen=True)
class RunFilter:
    """Optional filters on runs; each list means 'any of these'."""

    methods: Sequence[str] | None = None
    archs: Sequence[str] | None = None
    datasets: Sequence[str] | None = None
    densities: Sequence[float] | None = None
    statuses: Sequence[str] | None = None
    config_hashes: Sequence[str] | None = None  # exactly these runs (a grid's), when given
    seeds: Sequence[int] | None = None
    epochs: Sequence[int] | None = None  # the epochs of the run's budget
    budgets: Sequence[str] | None = None  # budget labels, as :func:`budget_label` writes them

    def apply(self, stmt: Select) -> Select:
        """The SQL filters (bound parameters); budget filters are applied to the frame."""
        for column, values in (
            (Run.config_hash, self.config_hashes),
            (Run.method, self.methods),
            (Run.arch, self.archs),
            (Run.dataset, self.datasets),
            (Run.density, self.densities),
            (Run.status, self.statuses),
            (Run.seed, self.seeds),
        ):
            if values:
                stmt = stmt.where(column.in_(list(values)))
        return stmt

    def keep(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``frame`` (which has budget columns) inside the budget filters."""
        if self.epochs:
            frame = frame[frame["epochs"].isin(list(self.epochs))]
        if self.budgets:
            frame = frame[frame["budget"].isin(list(self.budgets))]
        return frame


def runs(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """One row per run: its config, budget, status, accuracy, times and provenance, by id.

    ``allocation_seconds`` is the wall-clock of the allocation, ``train_seconds`` of training.
    """
    stmt = (
        select(
            *(getattr(Run, c) for c in RUN_COLUMNS),
            Run.options,
            Run.config,
            AllocationCostRow.seconds.label("allocation_seconds"),
            *(getattr(Run, c) for c in PROVENANCE_COLUMNS),
        )
        .outerjoin(AllocationCostRow, AllocationCostRow.run_id == Run.id)
        .order_by(Run.id)
    )
    return _frame(engine, stmt, where)


ACCURACY_KEYS = ["arch", "dataset", "budget", "method", "density"]
ACCURACY_COLUMNS = [*ACCURACY_KEYS, "mean", "std", "n", "min", "max", "failed", "reason"]


def accuracy(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """Test accuracy aggregated per arch x dataset x budget x method x density (fractions).

    Columns: arch, dataset, budget, method, density, mean, std, n, min, max over the finished
    runs (std is 0 for one run), ``failed`` (failed runs of the config) and ``reason`` (their
    distinct reasons, when every run of the config failed). A config whose every run failed is
    a row with n = 0 and NaN accuracies: shown as failed, never dropped. Runs of different
    budgets are never averaged together.
    """
    frame = runs(engine, where)
    frame = frame[frame["status"].isin(["finished", "failed"])]
    if frame.empty:
        return pd.DataFrame(columns=ACCURACY_COLUMNS)
    finished = frame[frame["status"] == "finished"]
    grouped = finished.groupby(ACCURACY_KEYS)["test_acc"]
    stats = grouped.agg(["mean", "std", "count", "min", "max"]).rename(columns={"count": "n"})
    failed = frame[frame["status"] == "failed"]
    fails = failed.groupby(ACCURACY_KEYS).agg(
        failed=("id", "size"),
        reasons=("reason", lambda r: "; ".join(sorted({str(x) for x in r if x}))),
    )
    out = stats.join(fails, how="outer").reset_index()
    out["n"] = out["n"].fillna(0).astype(int)
    out["failed"] = out["failed"].fillna(0).astype(int)
    out["std"] = out["std"].where(out["n"] != 1, 0.0)
    out["reason"] = out["reasons"].where(out["n"] == 0, None)
    return out[ACCURACY_COLUMNS].sort_values(ACCURACY_KEYS, ignore_index=True)


def _frame(engine: Engine, stmt: Select, where: RunFilter | None) -> pd.DataFrame:
    where = where or RunFilter()
    stmt = where.apply(stmt)
    with engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if "options" in frame.columns:
        frame["method"] = [method_spec(m, o) for m, o in zip(frame["method"], frame["options"])]
        frame = frame.drop(columns="options")
    if "config" in frame.columns:
        configs = [config or {} for config in frame["config"]]
        position = list(frame.columns).index("config")
        for offset, key in enumerate((*BUDGET_FIELDS, "budget")):
            values = [budget_label(c) if key == "budget" else c.get(key) for c in configs]
            frame.insert(position + 1 + offset, key, pd.Series(values, dtype=object))
        frame = where.keep(frame.drop(columns="config")).reset_index(drop=True)
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
            EpochMetric.steps,
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


def budgets(engine: Engine, where: RunFilter | None = None) -> pd.DataFrame:
    """Runs per training budget per arch x dataset: what ``--budget`` can select."""
    frame = runs(engine, where)
    keys = ["arch", "dataset", "budget", *BUDGET_FIELDS]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "runs"])
    for key in BUDGET_FIELDS:  # "-": not set (the preset's or the data set's default)
        frame[key] = [("-" if value is None else str(value)) for value in frame[key]]
    return frame.groupby(keys, sort=False, dropna=False).size().rename("runs").reset_index()
