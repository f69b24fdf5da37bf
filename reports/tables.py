"""Tables from query results: accuracy versus density (Table 1, left block) and measured costs.

Every function here takes the frames of :mod:`storage`'s typed queries and nothing else.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from reports.style import DENSE, DENSE_DENSITY, budget_name, method_order

TABLE_KEYS = ["arch", "dataset", "budget"]  # one table (and report section) per budget
SERIES_KEYS = [*TABLE_KEYS, "method"]  # one line of a figure, one row of a table
CONFIG_KEYS = [*SERIES_KEYS, "density"]  # one cell: the runs averaged together (over seeds)
ACCURACY_COLUMNS = [*CONFIG_KEYS, "mean", "std", "n", "min", "max", "failed", "reason"]
REASON_WIDTH = 40  # characters of a failure reason shown in a table cell
FORMATS = ("table", "markdown", "csv", "latex", "json", "html")

TableKey = tuple[str, str, str]  # (arch, dataset, budget)


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


def format_failure(reason: str | None) -> str:
    """``n/a (reason)`` for a config whose runs all failed; long reasons are cut."""
    reason = " ".join(str(reason or "").split()) or "failed"
    if len(reason) > REASON_WIDTH:
        reason = reason[: REASON_WIDTH - 1] + "…"
    return f"n/a ({reason})"


def accuracy_rows(aggregated: pd.DataFrame) -> pd.DataFrame:
    """:func:`storage.accuracy`'s frame with every column of :data:`ACCURACY_COLUMNS`.

    A frame without ``failed``/``reason`` (built by hand) counts no failures; ``budget`` is
    required, because runs of different budgets must never share a cell.
    """
    out = budgeted(aggregated)
    for column, default in (("min", out["mean"]), ("max", out["mean"]), ("failed", 0)):
        if column not in out.columns:
            out[column] = default
    if "reason" not in out.columns:
        out["reason"] = None
    out["failed"] = out["failed"].fillna(0).astype(int)
    out["n"] = out["n"].fillna(0).astype(int)
    return out[ACCURACY_COLUMNS]


def budgeted(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a query frame whose ``budget`` column holds the label shown for each run
    (:func:`~reports.style.budget_name`: a run without one gets a placeholder, never NaN)."""
    if "budget" not in frame.columns:
        raise ValueError(
            "the frame has no 'budget' column (storage's query frames have): runs of different "
            "training budgets must never be averaged together"
        )
    return frame.assign(budget=[budget_name(b) for b in frame["budget"]])


def lost_configs(aggregated: pd.DataFrame) -> pd.DataFrame:
    """The configs of :func:`storage.accuracy`'s frame whose every run failed (n = 0)."""
    rows = accuracy_rows(aggregated)
    return rows[(rows["n"] == 0) & (rows["failed"] > 0)]


def table_keys(*frames: pd.DataFrame) -> list[TableKey]:
    """The (arch, dataset, budget) of every row of ``frames``, sorted, each once."""
    keys = {
        (str(a), str(d), budget_name(b))
        for f in frames
        for a, d, b in zip(f["arch"], f["dataset"], f["budget"])
    }  # fmt: skip
    return sorted(keys)


def rows_of(frame: pd.DataFrame, key: TableKey) -> pd.DataFrame:
    """The rows of a budgeted frame that belong to one (arch, dataset, budget)."""
    arch, dataset, budget = key
    return frame[
        (frame["arch"] == arch) & (frame["dataset"] == dataset) & (frame["budget"] == budget)
    ]


def dense_baseline(aggregated: pd.DataFrame) -> pd.Series:
    """Mean accuracy of the dense runs (density 1) of :func:`storage.accuracy`'s frame, indexed
    by (arch, dataset, budget): each budget has its own baseline."""
    rows = accuracy_rows(aggregated)
    dense = rows[(rows["method"] == DENSE) & (rows["density"] == DENSE_DENSITY) & (rows["n"] > 0)]
    return dense.set_index(TABLE_KEYS)["mean"]


def accuracy_table(aggregated: pd.DataFrame) -> dict[TableKey, pd.DataFrame]:
    """One table per (arch, dataset, budget): rows = methods (dense first), columns = densities
    (descending).

    ``aggregated`` is :func:`storage.accuracy`'s frame (mean, std, n, failed and reason per
    method x density x budget). Cells are :func:`format_cell` with the delta to the dense
    baseline of the same arch, data set and budget when there is one, and
    :func:`format_failure` for configs whose runs all failed (n = 0).
    """
    rows = accuracy_rows(aggregated)
    baseline = dense_baseline(rows)
    tables: dict[TableKey, pd.DataFrame] = {}
    for key in table_keys(rows):
        base = baseline.get(key)
        cells: dict[tuple[str, float], str] = {}
        for row in rows_of(rows, key).itertuples(index=False):
            if row.n == 0:
                cells[(row.method, row.density)] = format_failure(row.reason)
                continue
            is_dense = row.method == DENSE and row.density == DENSE_DENSITY
            delta = None if base is None or is_dense else 100 * (row.mean - base)
            cells[(row.method, row.density)] = format_cell(
                row.mean, row.std, row.n, delta, row.failed
            )
        tables[key] = _pivot(cells)
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


def cost_table(costs: pd.DataFrame) -> dict[TableKey, pd.DataFrame]:
    """One table per (arch, dataset, budget) of what allocating cost, per method and density.

    ``costs`` is :func:`storage.allocation_cost`'s frame (one row per run). Each cell is the mean
    over the runs of a config (seconds also with the std); rows = method x density, the dense
    baseline first.
    """
    tables: dict[TableKey, pd.DataFrame] = {}
    if costs.empty:
        return tables
    grouped = (
        budgeted(costs)
        .groupby(CONFIG_KEYS)
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
    for key in table_keys(grouped):
        group = rows_of(grouped, key)
        group = group.assign(sparse=group["method"] != DENSE).sort_values(
            ["sparse", "method", "density"], ascending=[True, True, False]
        )
        rows = [
            {"method": r.method, "density": f"{r.density:g}", **_cost_cells(r)}
            for r in group.itertuples()
        ]
        tables[key] = pd.DataFrame(rows).set_index(["method", "density"])
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
    if fmt == "csv":  # a plain row number is no column of the data
        return table.to_csv(index=not isinstance(table.index, pd.RangeIndex))
    if fmt == "latex":
        return to_latex(table)
    if fmt == "json":
        return table.to_json(orient="records", indent=2, date_format="iso")
    if fmt == "html":
        return table.to_html(escape=True, border=0, classes="table", na_rep="")
    return table.to_string()
