"""Tables and figures built from query results only (never from models or logs)."""

from reports.tables import accuracy_table, format_cell, render

__all__ = ["accuracy_table", "format_cell", "render"]
