"""``build_report``: every table and figure of the paper, for whatever the database holds.

Everything comes from :mod:`storage`'s typed queries; each query is a :class:`Query` so that the
page can print exactly the call (function and filters) that made each table and figure. The
page has one section per arch x data set x training budget (:mod:`reports.sections`), grouped
by arch x data set: runs of different budgets are never averaged together.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

import storage
from reports.curves import chance_by_dataset
from reports.figures import accuracy_figure, save_figure
from reports.html import Item, Section, figure_body, page
from reports.provenance import mixed_versions, provenance_summary, versions_table
from reports.sections import FINISHED_OR_FAILED, Context, Query, series_section
from reports.style import density_palette, method_order, method_palette
from reports.tables import TABLE_KEYS, budgeted, render, rows_of, table_keys

BUDGET_QUERY = "reports.budget_check.budget_checks(storage.runs(engine))"
CLAIMS_QUERY = "reports.claims.check_claims(engine)  # storage.runs, spectra, layer_allocation"

_SHOWN = Query("runs", storage.RunFilter(statuses=list(FINISHED_OR_FAILED)))

__all__ = ["Query", "build_report"]


def build_report(engine: Engine, out_dir: Path | str, *, claims: bool = False) -> Path:
    """Write every table (Markdown, CSV, LaTeX) and figure (PNG, SVG) of the database's results
    into ``out_dir`` with an ``index.html`` holding them all; returns the page's path.

    ``claims``: also check the paper's five claims (:mod:`reports.claims`), as a section of the
    page and as ``claims.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_query = Query("runs")
    all_runs = budgeted(runs_query.run(engine))
    shown = all_runs[all_runs["status"].isin(FINISHED_OR_FAILED)]
    context = Context(
        engine,
        out_dir,
        method_palette(all_runs["method"]),
        density_palette(all_runs["density"]),
        chance=chance_by_dataset(all_runs),
    )
    sections = [_summary_section(all_runs, shown, runs_query)]
    overview = _overview_items(context)
    if overview:
        sections.append(Section("Accuracy versus density, every network and budget", overview))
    if claims:
        sections.append(Section("The paper's claims, checked", _claim_items(context)))
    sections += [series_section(context, key, rows_of(shown, key)) for key in table_keys(all_runs)]
    intro = (
        f"{len(all_runs)} runs in {storage.display_url(str(engine.url))}. Every table and figure "
        "below is made from the database alone, by the storage query printed under it, with "
        "one section per network, data set and training budget."
    )
    if not shown.empty:
        made = provenance_summary(shown)
        intro += f" The {len(shown)} finished and failed runs were made with {made}"
    index = out_dir / "index.html"
    index.write_text(page("paibench report", intro, sections), encoding="utf-8")
    return index


def _summary_section(all_runs: pd.DataFrame, shown: pd.DataFrame, query: Query) -> Section:
    if all_runs.empty:
        return Section("Runs", [])
    items = [_runs_item(all_runs, query)]
    if not shown.empty:
        items.append(_versions_item(shown))
    mixed = mixed_versions(shown)
    if not mixed.empty:
        items.append(
            Item(
                "Warning: series made by different code versions",
                render(mixed.set_index([*TABLE_KEYS, "method"]), "html"),
                queries=[f"{_SHOWN}  # reports.mixed_versions"],
                counts=f"{len(mixed)} series (arch, data set, budget, method)",
                note="Each of these series averages runs made by different paibench versions or "
                "git commits (runs without provenance count as one more version); its section "
                "below says so again. Re-run it with one version to cite it.",
                warning=True,
            )
        )
    return Section("Runs", items)


def _runs_item(all_runs: pd.DataFrame, query: Query) -> Item:
    counts = pd.crosstab(
        [all_runs["arch"], all_runs["dataset"], all_runs["budget"], all_runs["method"]],
        all_runs["status"],
    )
    counts = counts.reindex(method_order(counts.index.get_level_values("method")), level=3)
    budgets = sorted(set(all_runs["budget"]))
    return Item(
        "Runs per status",
        render(counts, "html"),
        queries=[str(query)],
        counts=f"{len(all_runs)} runs",
        note=f"Training budgets present: {'; '.join(budgets)}. Runs of different budgets are "
        "never averaged together: each budget has its own section below.",
    )


def _versions_item(shown: pd.DataFrame) -> Item:
    return Item(
        "What the results are made of",
        render(versions_table(shown), "html"),
        queries=[str(_SHOWN)],
        counts=f"{len(shown)} finished and failed runs",
        note="Runs per paibench version, git commit ((dirty): the work tree had uncommitted "
        "changes), Python, torch, CUDA and device, as each run recorded them; 'not recorded': "
        "runs stored before runs recorded their provenance.",
    )


def _overview_items(context: Context) -> list[Item]:
    """Every arch x data set x budget's accuracy panel in one figure (the paper's Figures 2, 3);
    each is also in its own section."""
    query = Query("accuracy")
    aggregated = query.run(context.engine)
    if aggregated.empty:
        return []
    title = "Test accuracy versus density"
    figure = accuracy_figure(aggregated, context.methods, chance=context.chance)
    png, svg = save_figure(figure, context.out_dir, "accuracy_vs_density")
    chance = ", ".join(f"{d}: {100 * c:.3g}%" for d, c in sorted(context.chance.items()))
    return [
        Item(
            f"{title} (Figures 2, 3)",
            figure_body(png.name, svg.name, title),
            queries=[str(query)],
            counts=f"{int(aggregated['n'].sum())} finished runs, "
            f"{int((aggregated['n'] == 0).sum())} configs whose runs all failed",
            files=[png.name, svg.name],
            note="One panel per network, data set and training budget. Mean and ±1 std band "
            "over seeds; dashed black: the dense baseline of that budget; X on the dotted line: "
            f"every run failed, drawn at chance accuracy ({chance}).",
        )
    ]


def _claim_items(context: Context) -> list[Item]:
    """One item per verdict, each titled by its claim (``Claim 3 (FORCE): holds``)."""
    from reports.budget_check import WITHIN, budget_checks, budget_markdown, budget_summary
    from reports.claims import CRITERIA, STATEMENTS, check_claims, claims_markdown

    verdicts = check_claims(context.engine)
    checks = budget_checks(storage.runs(context.engine))
    path = context.out_dir / "claims.md"
    path.write_text(claims_markdown(verdicts) + "\n" + budget_markdown(checks), encoding="utf-8")
    items = []
    for verdict in verdicts:
        evidence = "".join(f"<li>{escape(line)}</li>" for line in verdict.evidence)
        items.append(
            Item(
                f"{verdict.title}: {verdict.label}",
                f"<blockquote>{escape(STATEMENTS[verdict.number])}</blockquote><ul>{evidence}</ul>",
                queries=[CLAIMS_QUERY],
                files=[path.name],
                note=f"Criterion: {CRITERIA[verdict.number]}.",
            )
        )
    lines = "".join(f"<li>{escape(check.line())}</li>" for check in checks)
    items.append(
        Item(
            f"Budget check: {budget_summary(checks)}",
            f"<ul>{lines}</ul>",
            queries=[BUDGET_QUERY],
            files=[path.name],
            note=f"Criterion: the dense network within {100 * WITHIN:g} points of itself at "
            "twice the epochs.",
        )
    )
    return items
