"""A results database of known rows, for the report tests (tables, figures, the HTML page).

Rows are inserted directly (no training): each :class:`Row` is one run with its accuracy or
failure reason, its kept weights per layer and its Jacobian spectrum, if any.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from storage import session_scope
from storage.schema import AllocationCostRow, Failure, LayerAllocation, Run, SpectrumValue

LAYER_TOTALS = (1000, 500, 100)


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


def fill_known_rows(engine: Engine) -> None:
    """Insert :func:`known_rows` (and one pending run, part of no table or figure)."""
    with session_scope(engine) as session:
        for i, row in enumerate(known_rows()):
            failed = row.acc is None
            run = Run(
                config_hash=f"{i:016x}",
                config={},
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
        session.add(
            Run(
                config_hash="f" * 16, config={}, method="epl", options={}, arch="mlp",
                dataset="digits", seed=9, density=0.1, status="pending",
            )
        )  # fmt: skip
