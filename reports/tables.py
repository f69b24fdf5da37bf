"""Tables from query results: accuracy versus density (Table 1, left block) and measured costs.

Every function here takes the frames of :mod:`storage`'s typed queries and nothing else.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from reports.style import DENSE, DENSE_DENSITY, method_order

CONFIG_KEYS = ["arch", "dataset", "method", "density"]
FAILURE_COLUMNS = [*CONFIG_KEYS, "failed", "finished", "reason"]
REASON_WIDTH = 40  # characters of a failure reason shown in a table cell
FORMATS = ("table", "markdown", "csv", "latex", "json", "html")


def format_cell(
    mean: float, std: float, n: int, delta: float | None = None, failed: int = 0
) -> str:
    """``mean ± std (n)`` in percent, as the paper reports accuracies.

    ``delta`` (in percentage points, to the dense baseline) is appended as ``Δ -1.23``;
    ``failed`` runs of the same config, if any, are counted beside ``n``.
    """
    count = f"{n}, {failed} failed" if failed else f"{n}"
    cell = f"{100 * mean:.2f} ± {100 * std:.2f} ({count})"
    return cell if delta is None else f"{cell} Δ {delta:+.2f}"


def format_failure(reason: str) -> str:
    """``n/a (reason)`` for a config whose runs all failed; long reasons are cut."""
    reason = " ".join(str(reason).split()) or "failed"
    if len(reason) > REASON_WIDTH:
        reason = reason[: REASON_WIDTH - 1] + "…"
    return f"n/a ({reason})"


def failure_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Failed runs per config from :func:`storage.runs`'s frame.

    Columns: arch, dataset, method, density, failed, finished (runs of each status) and reason
    (the distinct reasons of the failed runs, joined by ``; ``). Only configs with a failure.
    """
    failed = runs[runs["status"] == "failed"]
    if failed.empty:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    finished = runs[runs["status"] == "finished"].groupby(CONFIG_KEYS).size()
    out = (
        failed.assign(reason=failed["reason"].fillna("failed"))
        .groupby(CONFIG_KEYS)
        .agg(failed=("id", "size"), reason=("reason", lambda r: "; ".join(sorted(set(r)))))
        .reset_index()
    )
    index = pd.MultiIndex.from_frame(out[CONFIG_KEYS])
    out["finished"] = finished.reindex(index, fill_value=0).to_numpy()
    return out[FAILURE_COLUMNS]


def dense_baseline(aggregated: pd.DataFrame) -> pd.DataFrame:
    """The dense runs' (density 1) rows of :func:`storage.accuracy`'s frame, per arch x dataset."""
    dense = aggregated[(aggregated["method"] == DENSE) & (aggregated["density"] == DENSE_DENSITY)]
    return dense.set_index(["arch", "dataset"])


def accuracy_table(
    aggregated: pd.DataFrame, failures: pd.DataFrame | None = None
) -> dict[tuple[str, str], pd.DataFrame]:
    """One table per (arch, dataset): rows = methods (dense first), columns = densities (desc.).

    ``aggregated`` is :func:`storage.accuracy`'s frame (mean, std, n per method x density);
    ``failures`` is :func:`failure_summary`'s. Cells are :func:`format_cell` with the delta to
    the dense baseline of the same arch and data set when there is one, and
    :func:`format_failure` for configs whose runs all failed.
    """
    if failures is None:
        failures = pd.DataFrame(columns=FAILURE_COLUMNS)
    baseline = dense_baseline(aggregated)
    keys = pd.concat([aggregated[["arch", "dataset"]], failures[["arch", "dataset"]]])
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    for arch, dataset in sorted(set(map(tuple, keys.to_numpy()))):
        group = aggregated[(aggregated["arch"] == arch) & (aggregated["dataset"] == dataset)]
        failed = failures[(failures["arch"] == arch) & (failures["dataset"] == dataset)]
        failed_counts = failed.set_index(["method", "density"])["failed"]
        base = baseline["mean"].get((arch, dataset))
        cells: dict[tuple[str, float], str] = {}
        for row in group.itertuples(index=False):
            is_dense = row.method == DENSE and row.density == DENSE_DENSITY
            delta = None if base is None or is_dense else 100 * (row.mean - base)
            n_failed = int(failed_counts.get((row.method, row.density), 0))
            cells[(row.method, row.density)] = format_cell(
                row.mean, row.std, int(row.n), delta, n_failed
            )
        for row in failed[failed["finished"] == 0].itertuples(index=False):
            cells[(row.method, row.density)] = format_failure(row.reason)
        tables[(arch, dataset)] = _pivot(cells)
    return tables


def _pivot(cells: dict[tuple[str, float], str]) -> pd.DataFrame:
    """Cells keyed by (method, density) -> rows = methods (dense first), columns = densities."""
    methods = method_order({m for m, _ in cells})
    densities = sorted({d for _, d in cells}, reverse=True)
    table = pd.DataFrame(
        [[cells.get((m, d), "") for d in densities] for m in methods],
        index=pd.Index(methods, name="method"),
        columns=[f"{d:g}" for d in densities],
    )
    return table


COST_COLUMNS = {
    "seconds": "allocation s (mean ± std)",
    "peak": "peak memory MiB",
    "forward": "forward passes",
    "backward": "backward passes",
    "params": "trainable params",
    "n": "runs",
}


def cost_table(costs: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """One table per (arch, dataset) of what allocating cost, per method and density.

    ``costs`` is :func:`storage.allocation_cost`'s frame (one row per run). Each cell is the mean
    over the runs of a config (seconds also with the std); rows = method x density, the dense
    baseline first.
    """
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    if costs.empty:
        return tables
    grouped = (
        costs.groupby(CONFIG_KEYS)
        .agg(
            seconds=("seconds", "mean"),
            seconds_std=("seconds", "std"),
            peak=("peak_bytes", "mean"),
            forward=("forward_passes", "mean"),
            backward=("backward_passes", "mean"),
            params=("trainable_params", "mean"),
            n=("run_id", "size"),
        )
        .reset_index()
    )
    grouped["seconds_std"] = grouped["seconds_std"].fillna(0.0)
    for (arch, dataset), group in grouped.groupby(["arch", "dataset"], sort=True):
        group = group.assign(sparse=group["method"] != DENSE).sort_values(
            ["sparse", "method", "density"], ascending=[True, True, False]
        )
        rows = [
            {"method": r.method, "density": f"{r.density:g}", **_cost_cells(r)}
            for r in group.itertuples()
        ]
        tables[(arch, dataset)] = pd.DataFrame(rows).set_index(["method", "density"])
    return tables


def _cost_cells(row: Any) -> dict[str, str]:
    """The formatted cells of one config's aggregated costs."""
    return {
        COST_COLUMNS["seconds"]: f"{row.seconds:.3f} ± {row.seconds_std:.3f}",
        COST_COLUMNS["peak"]: f"{row.peak / 2**20:.1f}",
        COST_COLUMNS["forward"]: _number(row.forward),
        COST_COLUMNS["backward"]: _number(row.backward),
        COST_COLUMNS["params"]: "n/a" if pd.isna(row.params) else _number(row.params, True),
        COST_COLUMNS["n"]: str(row.n),
    }


def _number(value: float, thousands: bool = False) -> str:
    """An integer-valued mean as an integer (``12,345`` with ``thousands``), else 1 decimal."""
    if float(value).is_integer():
        return f"{int(value):,}" if thousands else f"{int(value)}"
    return f"{value:,.1f}" if thousands else f"{value:.1f}"


def _flat(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``table`` with a named index turned into leading columns, and how many there are."""
    if all(name is None for name in table.index.names):
        return table, 0
    return table.reset_index(), table.index.nlevels


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs tabular (``\\toprule``/``\\midrule``/``\\bottomrule``), text escaped for LaTeX;
    index columns left-aligned, the others right-aligned."""
    flat, keys = _flat(table)
    styler = flat.style.format(escape="latex").format_index(escape="latex", axis=1)
    styler = styler.hide(axis="index")
    align = "l" * keys + "r" * (flat.shape[1] - keys)
    text = styler.to_latex(hrules=True, column_format=align)
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("…", r"\ldots{}")


def render(table: pd.DataFrame, fmt: str = "table") -> str:
    """Render a DataFrame as ``table`` (plain text), ``markdown``, ``csv``, ``latex``
    (booktabs), ``json`` or ``html`` (escaped)."""
    if fmt == "markdown":
        flat, keys = _flat(table)
        return flat.to_markdown(index=keys == 0)
    if fmt == "csv":
        return table.to_csv()
    if fmt == "latex":
        return to_latex(table)
    if fmt == "json":
        return table.to_json(orient="records", indent=2, date_format="iso")
    if fmt == "html":
        return table.to_html(escape=True, border=0, classes="table", na_rep="")
    return table.to_string()
