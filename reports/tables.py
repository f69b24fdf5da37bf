"""Tables from query results: accuracy versus density as in the paper's Table 1."""

from __future__ import annotations

import pandas as pd


def format_cell(mean: float, std: float, n: int) -> str:
    """``mean ± std (n)`` in percent, as the paper reports accuracies."""
    return f"{100 * mean:.2f} ± {100 * std:.2f} ({n})"


def accuracy_table(aggregated: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """One table per (arch, dataset): rows = methods, columns = densities (descending).

    ``aggregated`` is :func:`storage.accuracy`'s frame (mean, std, n per method x density).
    """
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    if aggregated.empty:
        return tables
    for (arch, dataset), group in aggregated.groupby(["arch", "dataset"], sort=True):
        cells = group.assign(
            cell=[format_cell(m, s, n) for m, s, n in zip(group["mean"], group["std"], group["n"])]
        )
        table = cells.pivot(index="method", columns="density", values="cell")
        table = table.reindex(columns=sorted(table.columns, reverse=True)).fillna("")
        table.columns = [f"{d:g}" for d in table.columns]
        tables[(arch, dataset)] = table
    return tables


def render(table: pd.DataFrame, fmt: str = "table") -> str:
    """Render a DataFrame as ``table`` (plain text), ``markdown``, ``csv``, ``latex``, ``json``."""
    if fmt == "markdown":
        return table.to_markdown()
    if fmt == "csv":
        return table.to_csv()
    if fmt == "latex":
        return table.to_latex()
    if fmt == "json":
        return table.to_json(orient="records", indent=2)
    return table.to_string()
