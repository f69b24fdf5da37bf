"""``build_report``: every table and figure of the paper, for whatever the database holds.

Everything comes from :mod:`storage`'s typed queries; each query is a :class:`Query` so that the
page can print exactly the call (function and filters) that made each table and figure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine

import storage
from reports.figures import accuracy_figure, layer_allocation_figure, save_figure, spectra_figure
from reports.html import Item, Section, figure_body, page
from reports.style import (
    Color,
    chance_accuracy,
    density_palette,
    method_order,
    method_palette,
    slug,
)
from reports.tables import accuracy_table, cost_table, failure_summary, render

TABLE_FORMATS = {"md": "markdown", "csv": "csv", "tex": "latex"}
FINISHED_OR_FAILED = ("finished", "failed")
CLAIMS_QUERY = "reports.claims.check_claims(engine)  # storage.runs, spectra, layer_allocation"


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


def _pair_filter(
    arch: str, dataset: str, statuses: Sequence[str] | None = None
) -> storage.RunFilter:
    return storage.RunFilter(archs=[arch], datasets=[dataset], statuses=statuses)


@dataclass
class _Context:
    engine: Engine
    out_dir: Path
    methods: dict[str, Color]
    densities: dict[float, Color]


def build_report(engine: Engine, out_dir: Path | str, *, claims: bool = False) -> Path:
    """Write every table (Markdown, CSV, LaTeX) and figure (PNG, SVG) of the database's results
    into ``out_dir`` with an ``index.html`` holding them all; returns the page's path.

    ``claims``: also check the paper's five claims (:mod:`reports.claims`), as a section of the
    page and as ``claims.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_query = Query("runs")
    all_runs = runs_query.run(engine)
    context = _Context(
        engine,
        out_dir,
        method_palette(all_runs["method"]),
        density_palette(all_runs["density"]),
    )
    pairs = sorted(set(zip(all_runs["arch"], all_runs["dataset"])))
    sections = [
        _summary_section(all_runs, runs_query, Query("budgets").run(engine)),
        Section("Accuracy versus density (Table 1, left)", _accuracy_tables(context, pairs)),
        Section("Allocation cost (Table 1, right, measured)", _cost_tables(context, pairs)),
        Section("Accuracy versus density (Figures 2, 3)", _accuracy_figure(context)),
        Section("Kept weights per layer (Figures 5, 13)", _layer_figures(context, pairs)),
        Section(
            "Jacobian spectra at initialisation (Figure 4)",
            _spectra_figures(context, pairs),
            empty="no run stored a spectrum (train with 'bench run --spectrum')",
        ),
        Section("Failures", _failure_tables(context, pairs), empty="no run failed"),
    ]
    if claims:
        sections.insert(1, Section("The paper's claims, checked", _claim_items(context)))
    intro = (
        f"{len(all_runs)} runs in {storage.display_url(str(engine.url))}. Every table and figure "
        "below is made from the database alone, by the storage query printed under it."
    )
    index = out_dir / "index.html"
    index.write_text(page("paibench report", intro, sections), encoding="utf-8")
    return index


def _summary_section(all_runs: pd.DataFrame, query: Query, budgets: pd.DataFrame) -> Section:
    if all_runs.empty:
        return Section("Runs", [])
    items = [_runs_item(all_runs, query)]
    mixed = budgets.groupby(["arch", "dataset"])["runs"].transform("size") > 1
    if mixed.any():
        items.append(
            Item(
                "Mixed training budgets",
                render(budgets[mixed].set_index(["arch", "dataset"]), "html"),
                queries=[str(Query("budgets"))],
                counts=f"{int(budgets[mixed]['runs'].sum())} runs",
                note="These networks and data sets hold runs trained with different budgets; "
                "the tables and figures below average a method's runs at a density over all "
                "of them. Put each budget in its own database (--db) to compare like with like.",
            )
        )
    return Section("Runs", items)


def _runs_item(all_runs: pd.DataFrame, query: Query) -> Item:
    counts = pd.crosstab(
        [all_runs["arch"], all_runs["dataset"], all_runs["method"]], all_runs["status"]
    )
    counts = counts.reindex(method_order(counts.index.get_level_values("method")), level=2)
    return Item(
        "Runs per status",
        render(counts, "html"),
        queries=[str(query)],
        counts=f"{len(all_runs)} runs",
    )


def _write_table(context: _Context, table: pd.DataFrame, name: str) -> list[str]:
    files = []
    for suffix, fmt in TABLE_FORMATS.items():
        path = context.out_dir / f"{name}.{suffix}"
        path.write_text(render(table, fmt), encoding="utf-8")
        files.append(path.name)
    return files


def _accuracy_tables(context: _Context, pairs: list[tuple[str, str]]) -> list[Item]:
    items = []
    for arch, dataset in pairs:
        accuracy = Query("accuracy", _pair_filter(arch, dataset))
        runs = Query("runs", _pair_filter(arch, dataset, statuses=list(FINISHED_OR_FAILED)))
        aggregated, failures = (
            accuracy.run(context.engine),
            failure_summary(runs.run(context.engine)),
        )
        tables = accuracy_table(aggregated, failures)
        if (arch, dataset) not in tables:
            continue
        table = tables[(arch, dataset)]
        items.append(
            Item(
                f"Test accuracy (%): {arch} on {dataset}",
                render(table, "html"),
                queries=[str(accuracy), f"{runs}  # failed configs: reports.failure_summary"],
                counts=f"{int(aggregated['n'].sum())} finished runs, "
                f"{int(failures['failed'].sum())} failed runs",
                files=_write_table(context, table, slug("accuracy", arch, dataset)),
                note="Cells: mean ± std over seeds (runs), Δ = difference to the dense baseline "
                "in percentage points; n/a (reason): every run of that config failed.",
            )
        )
    return items


def _cost_tables(context: _Context, pairs: list[tuple[str, str]]) -> list[Item]:
    items = []
    for arch, dataset in pairs:
        query = Query("allocation_cost", _pair_filter(arch, dataset))
        costs = query.run(context.engine)
        for (a, d), table in cost_table(costs).items():
            items.append(
                Item(
                    f"Allocation cost: {a} on {d}",
                    render(table, "html"),
                    queries=[str(query)],
                    counts=f"{len(costs)} runs with a measured allocation",
                    files=_write_table(context, table, slug("cost", a, d)),
                    note="Means over runs. Peak memory: extra bytes over the start of the "
                    "allocation (GPU: allocator peak; CPU: peak resident set).",
                )
            )
    return items


def _save(context: _Context, figure: Figure, name: str, title: str) -> tuple[str, list[str]]:
    png, svg = save_figure(figure, context.out_dir, name)
    return figure_body(png.name, svg.name, title), [png.name, svg.name]


def _accuracy_figure(context: _Context) -> list[Item]:
    accuracy = Query("accuracy")
    runs = Query("runs", storage.RunFilter(statuses=list(FINISHED_OR_FAILED)))
    aggregated, failures = accuracy.run(context.engine), failure_summary(runs.run(context.engine))
    if aggregated.empty and failures.empty:
        return []
    figure = accuracy_figure(aggregated, failures, context.methods)
    title = "Test accuracy versus density"
    body, files = _save(context, figure, "accuracy_vs_density", title)
    chance = ", ".join(
        f"{d}: {100 * chance_accuracy(d):.3g}%"
        for d in sorted(set(aggregated["dataset"]) | set(failures["dataset"]))
    )
    lost = failures[failures["finished"] == 0]
    return [
        Item(
            title,
            body,
            queries=[str(accuracy), f"{runs}  # failed configs: reports.failure_summary"],
            counts=f"{int(aggregated['n'].sum())} finished runs, {len(lost)} configs whose "
            "runs all failed",
            files=files,
            note="Mean and ±1 std band over seeds; dashed black: dense baseline; X on the "
            f"dotted line: every run failed, drawn at chance accuracy ({chance}).",
        )
    ]


def _per_pair_figures(
    context: _Context,
    pairs: list[tuple[str, str]],
    function: str,
    make: Callable[[pd.DataFrame, dict[float, Color]], Figure],
    prefix: str,
    title: str,
    note: str,
) -> list[Item]:
    """One figure per arch x data set from one storage query."""
    items = []
    for arch, dataset in pairs:
        query = Query(function, _pair_filter(arch, dataset))
        frame = query.run(context.engine)
        if frame.empty:
            continue
        full_title = f"{title}: {arch} on {dataset}"
        body, files = _save(context, make(frame, context.densities), slug(prefix, arch, dataset),
                            full_title)  # fmt: skip
        items.append(
            Item(
                full_title,
                body,
                queries=[str(query)],
                counts=f"{frame['run_id'].nunique()} runs",
                files=files,
                note=note,
            )
        )
    return items


def _layer_figures(context: _Context, pairs: list[tuple[str, str]]) -> list[Item]:
    return _per_pair_figures(
        context,
        pairs,
        "layer_allocation",
        layer_allocation_figure,
        "layers",
        "Kept weights",
        "Mean over seeds; grey: the layer's size. ▼ at the bottom: a layer that every run at "
        "that density pruned entirely (where several densities did, the highest is on top).",
    )


def _spectra_figures(context: _Context, pairs: list[tuple[str, str]]) -> list[Item]:
    return _per_pair_figures(
        context,
        pairs,
        "spectra",
        spectra_figure,
        "spectra",
        "Jacobian spectrum",
        "Mean over seeds, rank by rank; dashed black: the dense network. ▼ at the bottom: a "
        "singular value exactly 0 (an identically zero spectrum has no curve, only ▼). Equal "
        "spectra (DCTpS at every density) draw on top of each other.",
    )


def _failure_tables(context: _Context, pairs: list[tuple[str, str]]) -> list[Item]:
    items = []
    for arch, dataset in pairs:
        query = Query("failures", _pair_filter(arch, dataset))
        frame = query.run(context.engine)
        if frame.empty:
            continue
        columns = ["method", "density", "seed", "stage", "exception_type", "reason"]
        table = frame[columns].set_index(["method", "density", "seed"])
        items.append(
            Item(
                f"Failures: {arch} on {dataset}",
                render(table, "html"),
                queries=[str(query)],
                counts=f"{frame['run_id'].nunique()} failed runs",
                files=_write_table(context, table, slug("failures", arch, dataset)),
            )
        )
    return items


def _claim_items(context: _Context) -> list[Item]:
    from reports.claims import CRITERIA, STATEMENTS, check_claims, claims_markdown

    verdicts = check_claims(context.engine)
    path = context.out_dir / "claims.md"
    path.write_text(claims_markdown(verdicts), encoding="utf-8")
    items = []
    for verdict in verdicts:
        evidence = "".join(f"<li>{escape(line)}</li>" for line in verdict.evidence)
        items.append(
            Item(
                f"Claim {verdict.number}: {verdict.label}",
                f"<blockquote>{escape(STATEMENTS[verdict.number])}</blockquote><ul>{evidence}</ul>",
                queries=[CLAIMS_QUERY],
                files=[path.name],
                note=f"Criterion: {CRITERIA[verdict.number]}.",
            )
        )
    return items
