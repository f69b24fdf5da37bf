"""Tables and figures built from query results only (never from models or logs).

The tables load eagerly; the figures and :func:`build_report` (matplotlib, seaborn) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from reports.style import chance_accuracy, method_label, method_palette
from reports.tables import (
    accuracy_table,
    cost_table,
    format_cell,
    format_failure,
    lost_configs,
    render,
)

_LAZY = {
    "Query": "reports.build",
    "build_report": "reports.build",
    "accuracy_figure": "reports.figures",
    "layer_allocation_figure": "reports.figures",
    "save_figure": "reports.figures",
    "spectra_figure": "reports.figures",
    "mixed_versions": "reports.provenance",
    "versions_table": "reports.provenance",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")


__all__ = [
    "Query",
    "accuracy_figure",
    "accuracy_table",
    "build_report",
    "chance_accuracy",
    "cost_table",
    "format_cell",
    "format_failure",
    "layer_allocation_figure",
    "lost_configs",
    "method_label",
    "method_palette",
    "mixed_versions",
    "render",
    "save_figure",
    "spectra_figure",
    "versions_table",
]
