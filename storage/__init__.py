"""The results database: schema, migrations, engine setup and typed queries returning DataFrames."""

from storage.db import (
    DEFAULT_URL,
    StorageError,
    display_url,
    engine_url,
    exclusive,
    head_revision,
    make_engine,
    migrate,
    open_db,
    session_scope,
)
from storage.queries import (
    RunFilter,
    accuracy,
    allocation_cost,
    budgets,
    epoch_metrics,
    failures,
    layer_allocation,
    method_spec,
    runs,
    spectra,
)

__all__ = [
    "DEFAULT_URL",
    "RunFilter",
    "StorageError",
    "accuracy",
    "allocation_cost",
    "budgets",
    "display_url",
    "engine_url",
    "epoch_metrics",
    "exclusive",
    "failures",
    "head_revision",
    "layer_allocation",
    "make_engine",
    "method_spec",
    "migrate",
    "open_db",
    "runs",
    "session_scope",
    "spectra",
]
