"""The recorder interface: what the one-run pipeline reports, and to whom.

The pipeline knows nothing of databases; it reports plain rows (:mod:`storage.rows`) through
an object with these six methods. :class:`storage.ledger.RunRecorder` writes them to the
results database; :class:`MemoryRecorder` keeps them, for tests and for runs without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from storage.rows import AllocationRow, EpochRow, FailureRow, ProvenanceRow, ResultRow


class Recorder(Protocol):
    """Receives what one run reports, as it happens."""

    def started(self, row: ProvenanceRow) -> None: ...

    def allocation(self, row: AllocationRow) -> None: ...

    def spectrum(self, values: Sequence[float]) -> None: ...

    def epoch(self, row: EpochRow) -> None: ...

    def finished(self, row: ResultRow) -> None: ...

    def failed(self, row: FailureRow) -> None: ...


@dataclass
class MemoryRecorder:
    """A recorder that keeps every report in memory."""

    provenance: list[ProvenanceRow] = field(default_factory=list)
    allocations: list[AllocationRow] = field(default_factory=list)
    spectra: list[list[float]] = field(default_factory=list)
    epochs: list[EpochRow] = field(default_factory=list)
    results: list[ResultRow] = field(default_factory=list)
    failures: list[FailureRow] = field(default_factory=list)

    def started(self, row: ProvenanceRow) -> None:
        self.provenance.append(row)

    def allocation(self, row: AllocationRow) -> None:
        self.allocations.append(row)

    def spectrum(self, values: Sequence[float]) -> None:
        self.spectra.append(list(values))

    def epoch(self, row: EpochRow) -> None:
        self.epochs.append(row)

    def finished(self, row: ResultRow) -> None:
        self.results.append(row)

    def failed(self, row: FailureRow) -> None:
        self.failures.append(row)
