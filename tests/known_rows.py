"""A results database of known rows, for the report tests (tables, figures, the HTML page).

Rows are inserted directly (no training): each :class:`Row` is one run with its accuracy or
failure reason, its kept weights per layer, its Jacobian spectrum, its training budget (the
config JSON's epochs, train subset, ...) and its provenance, if any.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from storage import session_scope
from storage.schema import AllocationCostRow, Failure, LayerAllocation, Run, SpectrumValue

LAYER_TOTALS = (1000, 500, 100)
# The budget of the known rows: storage.budget_label calls it "adam, 10 epochs, 5,000 images".
BUDGET: Mapping[str, Any] = {"preset": "adam", "epochs": 10, "train_subset": 5000}
BUDGET_LABEL = "adam, 10 epochs, 5,000 images"


@dataclass(frozen=True)
class Row:
    """One run of the known database, with what it stored."""

    arch: str
    dataset: str
    method: str
    density: float
    seed: int
    acc: float | None  # None: the run failed
    reason: str = ""
    kept: tuple[int, ...] = ()
    spectrum: tuple[float, ...] = ()
    budget: Mapping[str, Any] = field(default_factory=lambda: dict(BUDGET))  # config entries
    provenance: Mapping[str, Any] = field(default_factory=dict)  # Run's provenance columns


def provenance(commit: str = "0" * 40, **changes: Any) -> dict[str, Any]:
    """A run's provenance columns, as a run recorded with paibench 0.4.0 on the CPU."""
    return {
        "paibench_version": "0.4.0",
        "git_commit": commit,
        "git_dirty": False,
        "python_version": "3.11.9",
        "torch_version": "2.4.1",
        "cuda_version": None,
        "device": "cpu",
        "host": "test-host",
        "threads": 1,
        "num_classes": 10,
        **changes,
    }


def known_rows() -> list[Row]:
    """Two arch x data set pairs: finished, partly failed and wholly failed configs."""
    mlp, cnn = ("mlp", "digits"), ("small_cnn", "cifar100")
    return [
        Row(*mlp, "dense", 1.0, 0, 0.95, kept=LAYER_TOTALS, spectrum=(3.0, 2.0, 1.0)),
        Row(*mlp, "dense", 1.0, 1, 0.97, kept=LAYER_TOTALS, spectrum=(3.2, 2.2, 1.2)),
        Row(*mlp, "epl", 0.1, 0, 0.90, kept=(40, 40, 20), spectrum=(0.3, 0.2, 0.1)),
        Row(*mlp, "epl", 0.1, 1, 0.80, kept=(40, 40, 20), spectrum=(0.5, 0.4, 0.3)),
        Row(*mlp, "epl", 0.1, 2, 0.85, kept=(40, 40, 20)),
        Row(*mlp, "epl", 0.01, 0, 0.60, kept=(8, 8, 0), spectrum=(0.0, 0.0, 0.0)),
        Row(*mlp, "epl", 0.01, 1, None, "loss is nan", kept=(8, 8, 0), spectrum=(0.0, 0.0, 0.0)),
        Row(*mlp, "epl", 0.001, 0, None, "zero gradient", kept=(1, 0, 0)),
        Row(*mlp, "epl", 0.001, 1, None, "zero gradient", kept=(1, 0, 0)),
        Row(*mlp, "snip", 0.1, 0, 0.91, kept=(60, 30, 10)),
        Row(*mlp, "snip", 0.01, 0, 0.70, kept=(10, 6, 0)),
        Row(*mlp, "snip", 0.01, 1, 0.72, kept=(10, 6, 0)),
        Row(*mlp, "snip", 0.001, 0, None, "saliency all zero & more"),
        Row(*cnn, "dense", 1.0, 0, 0.50),
        Row(*cnn, "my_plugin", 0.1, 0, 0.40),
        Row(*cnn, "my_plugin", 0.1, 1, 0.45),
        Row(*cnn, "my_plugin", 0.001, 0, None, "singular"),
        Row(*cnn, "snip", 0.05, 0, 0.30),
    ]


def _cost(row: Row, index: int) -> AllocationCostRow:
    return AllocationCostRow(
        seconds=0.25 * index + 0.01,
        peak_bytes=(index % 3) * 2**20 + 12345,
        forward_passes=0 if row.method == "epl" else 1 + index % 2,
        backward_passes=0 if row.method == "epl" else 1,
        memory_source="test",
        info={},
    )


def fill_known_rows(engine: Engine, rows: Iterable[Row] | None = None) -> None:
    """Insert ``rows`` (default :func:`known_rows`, and then one pending run, part of no table
    or figure)."""
    given = rows is not None
    with session_scope(engine) as session:
        for i, row in enumerate(known_rows() if rows is None else rows):
            failed = row.acc is None
            config = {
                "arch": row.arch, "dataset": row.dataset, "method": row.method,
                "density": row.density, "seed": row.seed, **row.budget,
            }  # fmt: skip
            run = Run(
                config_hash=f"{i:016x}",
                config=config,
                method=row.method,
                options={},
                arch=row.arch,
                dataset=row.dataset,
                seed=row.seed,
                density=row.density,
                status="failed" if failed else "finished",
                reason=row.reason or None,
                test_acc=row.acc,
                trainable_params=int(row.density * 1600) + 10,
                **row.provenance,
            )
            run.layers = [
                LayerAllocation(layer_index=j, name=f"{j}.weight", kept=k, total=LAYER_TOTALS[j])
                for j, k in enumerate(row.kept)
            ]
            if not failed:
                run.cost = _cost(row, i)
            session.add(run)
            session.flush()
            session.add_all(
                SpectrumValue(run_id=run.id, rank=r, value=v) for r, v in enumerate(row.spectrum)
            )
            if failed:
                session.add(
                    Failure(
                        run_id=run.id,
                        stage="train",
                        reason=row.reason,
                        exception_type="RuntimeError",
                        traceback_digest="0" * 16,
                    )
                )
        if given:
            return
        session.add(
            Run(
                config_hash="f" * 16, config=dict(BUDGET), method="epl", options={}, arch="mlp",
                dataset="digits", seed=9, density=0.1, status="pending",
            )
        )  # fmt: skip
