"""One section of the report per arch x data set x training budget: its accuracy table and
figure, allocation costs, kept weights per layer, spectra and failures, and a warning when one
of its series mixes code versions.

Runs of different budgets are never averaged together: every query of a section is filtered to
its budget (``storage.RunFilter(budgets=[...])``), and the frames are cut to it once more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine

import storage
from reports.figure_one import has_subspace_runs, trainable_figure
from reports.figures import accuracy_figure, layer_allocation_figure, save_figure, spectra_figure
from reports.html import Item, Section, figure_body
from reports.provenance import mixed_versions
from reports.steps_figure import steps_figure
from reports.style import UNKNOWN_BUDGET, Color, budget_slug, chance_accuracy, slug
from reports.tables import TableKey, accuracy_table, budgeted, cost_table, render, rows_of

TABLE_FORMATS = {"md": "markdown", "csv": "csv", "tex": "latex"}
FINISHED_OR_FAILED = ("finished", "failed")
MIXED = "reports.mixed_versions: paibench_version, git_commit"


@dataclass(frozen=True)
class Query:
    """A call of one of :mod:`storage`'s typed queries with its filter."""

    function: str
    where: storage.RunFilter = field(default_factory=storage.RunFilter)

    def run(self, engine: Engine) -> pd.DataFrame:
        query: Callable[[Engine, storage.RunFilter], pd.DataFrame] = getattr(storage, self.function)
        return query(engine, self.where)

    def __str__(self) -> str:
        given = [
            f"{f.name}={list(value)!r}"
            for f in dataclasses.fields(self.where)
            if (value := getattr(self.where, f.name))
        ]
        return f"storage.{self.function}(engine, storage.RunFilter({', '.join(given)}))"


@dataclass
class Context:
    """What every section shares: the database, the output folder, colours, chance levels and
    a file-name slug per budget (unique, even where two labels slug alike)."""

    engine: Engine
    out_dir: Path
    methods: dict[str, Color]
    densities: dict[float, Color]
    chance: dict[str, float] = field(default_factory=dict)
    slugs: dict[str, str] = field(default_factory=dict)

    def budget_slug(self, budget: str) -> str:
        if budget not in self.slugs:
            base = candidate = budget_slug(budget)
            taken = set(self.slugs.values())
            count = 1
            while candidate in taken:
                count += 1
                candidate = f"{base}-{count}"
            self.slugs[budget] = candidate
        return self.slugs[budget]

    def name(self, prefix: str, key: TableKey) -> str:
        """``accuracy_mlp_digits_adam-10-epochs-5000-images``: a file name for ``key``."""
        arch, dataset, budget = key
        return f"{slug(prefix, arch, dataset)}_{self.budget_slug(budget)}"


def key_filter(key: TableKey, statuses: Sequence[str] | None = None) -> storage.RunFilter:
    """The runs of one arch x data set x budget (runs without a budget label: all of the pair's,
    cut to them by :func:`~reports.tables.rows_of`)."""
    arch, dataset, budget = key
    budgets = None if budget == UNKNOWN_BUDGET else [budget]
    return storage.RunFilter(archs=[arch], datasets=[dataset], budgets=budgets, statuses=statuses)


def _fetch(context: Context, query: Query, key: TableKey) -> pd.DataFrame:
    return rows_of(budgeted(query.run(context.engine)), key)


def _write_table(context: Context, table: pd.DataFrame, name: str) -> list[str]:
    files = []
    for suffix, fmt in TABLE_FORMATS.items():
        path = context.out_dir / f"{name}.{suffix}"
        path.write_text(render(table, fmt), encoding="utf-8")
        files.append(path.name)
    return files


def _save(context: Context, figure: Figure, name: str, title: str) -> tuple[str, list[str]]:
    png, svg = save_figure(figure, context.out_dir, name)
    return figure_body(png.name, svg.name, title), [png.name, svg.name]


def series_section(context: Context, key: TableKey, runs: pd.DataFrame) -> Section:
    """The section of one arch x data set x budget, titled by the budget; ``runs`` are its
    finished and failed runs (:func:`storage.runs`'s frame), for the code-version warning."""
    arch, dataset, budget = key
    items = [
        *_mixed_item(runs, key),
        *_accuracy_items(context, key),
        *_cost_items(context, key),
        *_figure_items(context, key),
        *_steps_items(context, key),
        *_figure_one_items(context, key),
        *_failure_items(context, key),
    ]
    return Section(budget, items, group=f"{arch} on {dataset}")


def _mixed_item(runs: pd.DataFrame, key: TableKey) -> list[Item]:
    mixed = mixed_versions(runs)
    if mixed.empty:
        return []
    return [
        Item(
            "Warning: series made by different code versions",
            render(mixed.set_index(["method"]).drop(columns=["arch", "dataset", "budget"]), "html"),
            queries=[f"{Query('runs', key_filter(key, FINISHED_OR_FAILED))}  # {MIXED}"],
            counts=f"{len(mixed)} of {runs['method'].nunique()} methods",
            note="The runs of these methods (averaged together in the tables and figures "
            "below) were made by different paibench versions or git commits; their cells may "
            "mix results of different code. Re-run them with one version to cite them.",
            warning=True,
        )
    ]


def _accuracy_items(context: Context, key: TableKey) -> list[Item]:
    query = Query("accuracy", key_filter(key))
    aggregated = _fetch(context, query, key)
    tables = accuracy_table(aggregated)
    if key not in tables:
        return []
    table = tables[key]
    finished, failed = int(aggregated["n"].sum()), int(aggregated["failed"].sum())
    counts = f"{finished} finished runs, {failed} failed runs"
    chance = context.chance.get(key[1]) or chance_accuracy(key[1])
    lost = int((aggregated["n"] == 0).sum())
    title = "Test accuracy versus density"
    body, files = _save(
        context,
        accuracy_figure(aggregated, context.methods, chance=context.chance),
        context.name("accuracy_vs_density", key),
        title,
    )
    return [
        Item(
            "Test accuracy (%) (Table 1, left)",
            render(table, "html"),
            queries=[str(query)],
            counts=counts,
            files=_write_table(context, table, context.name("accuracy", key)),
            note="Cells: mean ± std over seeds (runs), Δ = difference to the dense baseline of "
            "this budget in percentage points; n/a (reason): every run of that config failed.",
        ),
        Item(
            f"{title} (Figures 2, 3)",
            body,
            queries=[str(query)],
            counts=f"{counts}; {lost} configs whose runs all failed",
            files=files,
            note="Mean and ±1 std band over seeds; dashed black: dense baseline; X on the "
            f"dotted line: every run failed, drawn at chance accuracy ({100 * chance:.3g}%, "
            "1 / the class count the runs recorded).",
        ),
    ]


def _cost_items(context: Context, key: TableKey) -> list[Item]:
    query = Query("allocation_cost", key_filter(key))
    costs = _fetch(context, query, key)
    table = cost_table(costs).get(key)
    if table is None:
        return []
    return [
        Item(
            "Allocation cost (Table 1, right, measured)",
            render(table, "html"),
            queries=[str(query)],
            counts=f"{len(costs)} runs with a measured allocation",
            files=_write_table(context, table, context.name("cost", key)),
            note="Means over runs. Peak memory: extra bytes over the start of the allocation "
            "(GPU: allocator peak; CPU: peak resident set).",
        )
    ]


FIGURES = (
    (
        "layer_allocation", layer_allocation_figure, "layers",
        "Kept weights per layer (Figures 5, 13)",
        "Mean over seeds; grey: the layer's size. ▼ at the bottom: a layer that every run at "
        "that density pruned entirely (where several densities did, the highest is on top).",
    ),
    (
        "spectra", spectra_figure, "spectra", "Jacobian spectrum at initialisation (Figure 4)",
        "Mean over seeds, rank by rank; dashed black: the dense network. ▼ at the bottom: a "
        "singular value exactly 0 (an identically zero spectrum has no curve, only ▼). Equal "
        "spectra (DCTpS at every density) draw on top of each other.",
    ),
)  # fmt: skip


def _figure_items(context: Context, key: TableKey) -> list[Item]:
    """The layer-allocation and spectrum figures of ``key``, where it has rows for them."""
    items = []
    for function, make, prefix, title, note in FIGURES:
        query = Query(function, key_filter(key))
        frame = _fetch(context, query, key)
        if frame.empty:
            continue
        figure = make(frame, context.densities)
        body, files = _save(context, figure, context.name(prefix, key), title)
        items.append(
            Item(
                title,
                body,
                queries=[str(query)],
                counts=f"{frame['run_id'].nunique()} runs",
                files=files,
                note=note,
            )
        )
    return items


def _steps_items(context: Context, key: TableKey) -> list[Item]:
    """Validation accuracy against optimizer steps, where the series' epoch rows have steps."""
    query = Query("epoch_metrics", key_filter(key, statuses=["finished"]))
    frame = _fetch(context, query, key)
    if frame.empty or frame["steps"].isna().all():
        return []
    chance = context.chance.get(key[1]) or chance_accuracy(key[1])
    title = "Validation accuracy against optimizer steps"
    body, files = _save(context, steps_figure(frame, chance), context.name("steps", key), title)
    note = (
        "Mean over seeds after each epoch; dashed black: the dense network; dotted: chance. "
        "Shows when each network leaves chance, which the final accuracies cannot."
    )
    runs = frame["run_id"].nunique()
    return [Item(title, body, queries=[str(query)], counts=f"{runs} runs", files=files, note=note)]


def _figure_one_items(context: Context, key: TableKey) -> list[Item]:
    """Figure 1 (accuracy against trainable parameters), where the series has hyperplane runs."""
    query = Query("runs", key_filter(key, statuses=["finished"]))
    frame = _fetch(context, query, key)
    if frame.empty or not has_subspace_runs(frame):
        return []
    title = "Best validation accuracy against trainable parameters (Figure 1)"
    body, files = _save(context, trainable_figure(frame), context.name("trainable", key), title)
    note = (
        "Mean ± std over seeds; x: parameters the optimizer trains (k coordinates plus biases and "
        "BatchNorm for Hyperplane Projection; kept weights plus the same for the others)."
    )
    return [
        Item(title, body, queries=[str(query)], counts=f"{len(frame)} runs", files=files, note=note)
    ]


def _failure_items(context: Context, key: TableKey) -> list[Item]:
    query = Query("failures", key_filter(key))
    frame = _fetch(context, query, key)
    if frame.empty:
        return []
    columns = ["method", "density", "seed", "stage", "exception_type", "reason"]
    table = frame[columns].set_index(["method", "density", "seed"])
    return [
        Item(
            "Failures",
            render(table, "html"),
            queries=[str(query)],
            counts=f"{frame['run_id'].nunique()} failed runs",
            files=_write_table(context, table, context.name("failures", key)),
        )
    ]
