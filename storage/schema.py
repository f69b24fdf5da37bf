"""SQLAlchemy 2 models of the results database.

One row per run (identified by the hash of its canonical config), plus per-epoch metrics,
per-layer allocation, allocation cost, Jacobian spectra and failures. Unique constraints do the
deduplication: a config can never be recorded twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUN_STATUSES = ("pending", "running", "finished", "failed")
# Names for every constraint and index, so that migrations can refer to them on any backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class Run(Base):
    """One training run of one config."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_hash: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    method: Mapped[str] = mapped_column(String(64), index=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    arch: Mapped[str] = mapped_column(String(64), index=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    seed: Mapped[int] = mapped_column(Integer)
    density: Mapped[float] = mapped_column(Float, index=True)
    achieved_density: Mapped[float | None] = mapped_column(Float)
    kept: Mapped[int | None] = mapped_column(BigInteger)
    total: Mapped[int | None] = mapped_column(BigInteger)
    trainable_params: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    best_val_acc: Mapped[float | None] = mapped_column(Float)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    test_acc: Mapped[float | None] = mapped_column(Float)
    epochs: Mapped[int | None] = mapped_column(Integer)
    train_seconds: Mapped[float | None] = mapped_column(Float)
    resumed: Mapped[bool] = mapped_column(default=False)
    # Who claimed the run last, ``trial-<Optuna trial id>@host:pid``: Optuna's heartbeat on that
    # trial says whether the holder is alive. ``attempts`` counts the claims and fences writes (a
    # worker only writes while the row still carries its attempt number); ``heartbeat_at`` is the
    # time of the holder's last write.
    worker: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Provenance (revision 0003): the code, software and machine that trained the run.
    paibench_version: Mapped[str | None] = mapped_column(String(32), index=True)
    git_commit: Mapped[str | None] = mapped_column(String(40))
    git_dirty: Mapped[bool | None] = mapped_column()
    python_version: Mapped[str | None] = mapped_column(String(32))
    torch_version: Mapped[str | None] = mapped_column(String(64))
    cuda_version: Mapped[str | None] = mapped_column(String(32))
    device: Mapped[str | None] = mapped_column(String(128))
    host: Mapped[str | None] = mapped_column(String(128))
    threads: Mapped[int | None] = mapped_column(Integer)
    num_classes: Mapped[int | None] = mapped_column(Integer)
    # False when an op without a deterministic kernel ran (named in nondeterministic_ops).
    deterministic: Mapped[bool | None] = mapped_column()
    nondeterministic_ops: Mapped[str | None] = mapped_column(Text)
    # The stack the run trained in (stacked training), NULL when it trained alone.
    stack: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    layers: Mapped[list[LayerAllocation]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="LayerAllocation.layer_index"
    )
    epoch_metrics: Mapped[list[EpochMetric]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="EpochMetric.epoch"
    )
    cost: Mapped[AllocationCostRow | None] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )


class EpochMetric(Base):
    """Training loss, validation accuracy and learning rate after one epoch."""

    __tablename__ = "epoch_metrics"
    __table_args__ = (UniqueConstraint("run_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_acc: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)  # wall time of the epoch (train + val)
    steps: Mapped[int | None] = mapped_column(Integer)  # optimizer steps by the epoch's end
    recorded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    run: Mapped[Run] = relationship(back_populates="epoch_metrics")


class LayerAllocation(Base):
    """Kept and total weights of one prunable layer (and DCTpS's alpha at init and at the end)."""

    __tablename__ = "layer_allocations"
    __table_args__ = (UniqueConstraint("run_id", "layer_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    layer_index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(256))
    kept: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    alpha_init: Mapped[float | None] = mapped_column(Float)
    alpha_final: Mapped[float | None] = mapped_column(Float)

    run: Mapped[Run] = relationship(back_populates="layers")


class AllocationCostRow(Base):
    """What allocating cost: wall seconds, peak extra bytes, forward and backward passes."""

    __tablename__ = "allocation_costs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), unique=True, index=True
    )
    seconds: Mapped[float] = mapped_column(Float)
    peak_bytes: Mapped[int] = mapped_column(BigInteger)
    forward_passes: Mapped[int] = mapped_column(Integer)
    backward_passes: Mapped[int] = mapped_column(Integer)
    memory_source: Mapped[str] = mapped_column(String(64))
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    run: Mapped[Run] = relationship(back_populates="cost")


class SpectrumValue(Base):
    """One of the top singular values of the input-output Jacobian at initialisation.

    ``rank`` 0 is the largest; see :mod:`bench.spectrum` for exactly what is computed.
    """

    __tablename__ = "spectra"
    __table_args__ = (UniqueConstraint("run_id", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)


class Failure(Base):
    """Why a run failed: stage, reason, exception type and a digest of the traceback."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    exception_type: Mapped[str] = mapped_column(String(128))
    traceback_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
