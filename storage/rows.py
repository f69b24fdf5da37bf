"""Plain rows the ledger writes: what a run reports, with no SQLAlchemy and no project import.

The one-run pipeline builds these and hands them to a recorder; :mod:`storage.ledger` turns
them into ORM rows. Keeping them free of SQLAlchemy lets the pipeline (and a GPU machine
without SQLAlchemy) use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class LostClaim(Exception):
    """Another worker took the run over (this one was thought dead): stop, write nothing."""


@dataclass(frozen=True)
class RunIdentity:
    """The columns that identify a run: its hash, full config and the indexed fields."""

    config_hash: str
    config: dict[str, Any]
    method: str
    options: dict[str, Any]
    arch: str
    dataset: str
    seed: int
    density: float


@dataclass(frozen=True)
class ProvenanceRow:
    """The code, software and machine that trained a run (stored when it starts)."""

    paibench_version: str
    git_commit: str | None
    git_dirty: bool | None
    python_version: str
    torch_version: str
    cuda_version: str | None
    device: str
    host: str
    threads: int
    num_classes: int | None = None


@dataclass(frozen=True)
class LayerRow:
    """Kept and total prunable weights of one layer."""

    name: str
    kept: int
    total: int


@dataclass(frozen=True)
class CostRow:
    """The measured cost of one allocation (paper Table 1's cost columns)."""

    seconds: float
    peak_bytes: int | None
    forward_passes: int
    backward_passes: int
    memory_source: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AllocationRow:
    """What an allocation chose: counts, per-layer rows and its cost."""

    kept: int
    total: int
    achieved_density: float
    trainable_params: int
    layers: list[LayerRow]
    cost: CostRow | None = None


@dataclass(frozen=True)
class EpochRow:
    """One epoch's metrics, stored as the epoch ends."""

    epoch: int
    train_loss: float | None
    val_acc: float | None
    lr: float | None
    seconds: float | None
    steps: int | None = None  # optimizer steps taken by the end of this epoch


@dataclass(frozen=True)
class ResultRow:
    """The end of a finished run."""

    best_val_acc: float | None
    test_acc: float | None
    train_seconds: float | None
    epochs: int
    resumed: bool
    best_epoch: int | None
    alpha_init: dict[str, float] = field(default_factory=dict)
    alpha_final: dict[str, float] = field(default_factory=dict)
    # Ops that ran without a deterministic kernel; empty: the run is deterministic.
    nondeterministic_ops: list[str] = field(default_factory=list)
    # ``stack-<digest>/<size>`` when the run trained in a stack, None when it trained alone.
    stack: str | None = None


@dataclass(frozen=True)
class FailureRow:
    """Why a run failed, at which stage, and a digest of the traceback that said so."""

    stage: str
    reason: str
    exception_type: str
    traceback_digest: str | None = None
