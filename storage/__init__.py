"""The results database: schema, engine setup and typed queries returning DataFrames."""

from storage.db import DEFAULT_URL, make_engine, open_db, session_scope
from storage.queries import RunFilter, accuracy, allocation_cost, layer_allocation, runs

__all__ = [
    "DEFAULT_URL",
    "RunFilter",
    "accuracy",
    "allocation_cost",
    "layer_allocation",
    "make_engine",
    "open_db",
    "runs",
    "session_scope",
]
