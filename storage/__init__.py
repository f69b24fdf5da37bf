"""The results database: schema, migrations, engine setup, the ledger and typed queries.

Names are loaded on first use (PEP 562), so ``import storage.rows`` (the plain rows the
pipeline reports) pulls in neither SQLAlchemy nor pandas, and the CLI starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "storage.db": (
        "DEFAULT_URL",
        "StorageError",
        "display_url",
        "engine_url",
        "exclusive",
        "head_revision",
        "make_engine",
        "migrate",
        "open_db",
        "session_scope",
    ),
    "storage.ledger": ("Claim", "Ledger", "DONE_STATUSES"),
    "storage.queries": (
        "RunFilter",
        "accuracy",
        "allocation_cost",
        "budgets",
        "epoch_metrics",
        "failures",
        "layer_allocation",
        "runs",
        "spectra",
    ),
    "storage.reruns": ("reopen",),
    "storage.rows": ("LostClaim",),
    "storage.spec": ("BUDGET_FIELDS", "budget_label", "method_spec"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
