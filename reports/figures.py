"""Figures from query results: accuracy versus density, layer allocation, Jacobian spectra.

Each function takes frames of :mod:`storage`'s typed queries and returns a matplotlib
:class:`~matplotlib.figure.Figure` (no pyplot, no global state). Every artist a test may count
carries a ``gid``: ``mean:M``, ``band:M``, ``failed-line:M``, ``failed:M`` (method M), ``dense``,
``chance``, ``size``, ``kept:D``, ``spectrum:D`` and ``zero:D`` (density D, as ``f"{D:g}"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import (
    MaxNLocator,
    PercentFormatter,
)

from reports.plotting import (
    MIN_ACCURACY_SPAN,
    _density_axis,
    _legend,
    _log_y,
    _mark_zeros,
    _panels,
    _proxy,
    _style,
    _styled,
)
from reports.style import (
    DENSE,
    DENSE_COLOR,
    Color,
    budget_name,
    chance_accuracy,
    density_palette,
    format_density,
    method_label,
    method_marker,
    method_order,
    method_palette,
)
from reports.tables import (
    TableKey,
    accuracy_rows,
    budgeted,
    dense_baseline,
    rows_of,
    table_keys,
)


def panel_title(key: TableKey) -> str:
    """``mlp on digits`` over the budget's label, the title of one accuracy panel."""
    arch, dataset, budget = key
    return f"{arch} on {dataset}\n{budget_name(budget)}"


def accuracy_figure(
    aggregated: pd.DataFrame,
    palette: dict[str, Color] | None = None,
    ncols: int = 2,
    *,
    chance: Mapping[str, float] | None = None,
) -> Figure:
    """Test accuracy versus density (Figures 2, 3), one panel per arch x data set x budget
    (titled by :func:`panel_title`).

    ``aggregated`` is :func:`storage.accuracy`'s frame. Per method: the mean (line, ``mean:M``)
    and a band of one std (``band:M``); densities where every run failed (n = 0) are drawn at
    chance accuracy (``failed:M`` markers) and reached by dashed segments (``failed-line:M``).
    The dense baseline (of the same budget) is a dashed black line (``dense``), chance a dotted
    grey one (``chance``, panels with failures only). ``chance``: chance accuracy per data set
    (:func:`reports.curves.chance_by_dataset`, from the runs' recorded class counts); a data set
    it lacks gets :func:`~reports.style.chance_accuracy`.
    """
    rows = accuracy_rows(aggregated)
    failures = rows[rows["n"] == 0]
    aggregated = rows[rows["n"] > 0]
    keys = table_keys(rows)
    if not keys:
        raise ValueError("no accuracy results to plot")
    methods = method_order(set(rows["method"]))
    palette = palette or method_palette(methods)
    baseline = dense_baseline(aggregated)
    figure, axes = _panels(len(keys), ncols)
    drawn: set[str] = set()
    for ax, key in zip(axes, keys):
        acc, failed = rows_of(aggregated, key), rows_of(failures, key)
        acc, failed = acc[acc["method"] != DENSE], failed[failed["method"] != DENSE]
        level = (chance or {}).get(key[1]) or chance_accuracy(key[1])
        for method in method_order(set(acc["method"]) | set(failed["method"])):
            mean = acc[acc["method"] == method].set_index("density")
            lost = sorted(failed.loc[failed["method"] == method, "density"])
            _method_curve(ax, method, palette[method], mean, lost, level)
            drawn.add(method)
        if key in baseline.index:
            ax.axhline(baseline[key], ls="--", color=DENSE_COLOR, lw=1.3, gid="dense")
        if not failed.empty:
            ax.axhline(level, ls=":", color="0.45", lw=1.1, gid="chance")
        densities = [*acc["density"], *failed["density"]]
        if densities:
            _density_axis(ax, densities)
        _min_span(ax, MIN_ACCURACY_SPAN)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel("test accuracy")
        ax.set_title(panel_title(key))
    handles = [
        _proxy(method_label(m), color=palette[m], marker=method_marker(m))
        for m in method_order(drawn)
    ]  # fmt: skip
    if not baseline.empty:
        handles.append(_proxy("dense baseline", color=DENSE_COLOR, ls="--"))
    if not failures[failures["method"] != DENSE].empty:
        handles.append(_proxy("all runs failed (at chance)", color="0.3", ls="--", marker="X"))
        handles.append(_proxy("chance (1 / classes)", color="0.45", ls=":"))
    _legend(figure, handles)
    return figure


def _min_span(ax: Axes, span: float) -> None:
    """Widen the y-axis to at least ``span`` around its data (a panel of only failures, all at
    chance, would otherwise zoom into a sliver and label every tick with the same percent)."""
    low, high = ax.get_ylim()
    if high - low < span:
        middle = (low + high) / 2
        ax.set_ylim(max(0.0, middle - span / 2), max(0.0, middle - span / 2) + span)


def _method_curve(
    ax: Axes, method: str, color: Color, mean: pd.DataFrame, lost: list[float], chance: float
) -> None:
    """One method's mean line, std band and failures in one panel."""
    x = np.array(sorted({*mean.index, *lost}), dtype=float)
    y = mean["mean"].reindex(x).to_numpy(dtype=float)
    std = mean["std"].reindex(x).to_numpy(dtype=float)
    label = method_label(method)
    ax.plot(x, y, marker=method_marker(method), color=color, label=label, gid=f"mean:{method}")
    ax.fill_between(x, y - std, y + std, color=color, alpha=0.2, lw=0, gid=f"band:{method}")
    if not lost:
        return
    failed = np.isin(x, lost)
    y_all = np.where(failed, chance, y)
    segments: list[float] = []
    seg_y: list[float] = []
    for i in range(len(x) - 1):
        if failed[i] or failed[i + 1]:
            segments += [x[i], x[i + 1], np.nan]
            seg_y += [y_all[i], y_all[i + 1], np.nan]
    ax.plot(segments, seg_y, ls="--", color=color, gid=f"failed-line:{method}")
    ax.plot(
        x[failed], y_all[failed], ls="none", marker="X", ms=8, color=color, mec="white",
        mew=0.6, zorder=3, gid=f"failed:{method}",
    )  # fmt: skip


def _one_panel_set(frame: pd.DataFrame, what: str) -> tuple[pd.DataFrame, str]:
    """``frame`` budgeted, and the words for its one arch x data set x budget."""
    frame = budgeted(frame)
    keys = table_keys(frame)
    if len(keys) != 1:
        raise ValueError(
            f"{what} needs the rows of one arch x data set x budget, got {keys or 'none'}"
        )
    arch, dataset, budget = keys[0]
    return frame, f"{arch} on {dataset} ({budget})"


def _density_handles(palette: dict[float, Color], densities: Sequence[float]) -> list[Line2D]:
    return [
        _proxy(format_density(d), color=palette[d], marker=".")
        for d in sorted(set(densities), reverse=True)
    ]


@_styled
def layer_allocation_figure(
    layers: pd.DataFrame, palette: dict[float, Color] | None = None, ncols: int = 3
) -> Figure:
    """Kept weights per prunable layer (Figures 5, 13) for one arch x data set x budget.

    ``layers`` is :func:`storage.layer_allocation`'s frame. One panel per method (the dense
    baseline only when it is alone), one curve per density (``kept:D``, mean over seeds), the
    layer sizes in grey (``size``), and a marker at the bottom of the log axis for each layer
    that every run of a density pruned entirely (``zero:D``).
    """
    layers, where = _one_panel_set(layers, "layer_allocation_figure")
    methods = method_order(set(layers["method"]) - {DENSE}) or [DENSE]
    palette = palette or density_palette(layers["density"])
    sizes = layers.groupby("layer_index")["total"].max()
    figure, axes = _panels(len(methods), ncols, sharey=True)
    any_zero = False
    for ax, method in zip(axes, methods):
        rows = layers[layers["method"] == method]
        ax.plot(sizes.index, sizes.to_numpy(), color="0.65", lw=1.0, gid="size")
        for density, by_density in sorted(rows.groupby("density"), reverse=True):
            kept = by_density.groupby("layer_index")["kept"].mean()
            color = palette[density]
            ax.plot(
                kept.index, kept.where(kept > 0).to_numpy(dtype=float), marker=".",
                color=color, gid=f"kept:{density:g}",
            )  # fmt: skip
            zeros = kept.index[kept == 0]
            if len(zeros):
                _mark_zeros(ax, list(zeros), color, density)
                any_zero = True
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("prunable layer index")
        ax.set_ylabel("kept weights" if ax.get_subplotspec().is_first_col() else "")
        ax.set_title(method_label(method))
    for ax in axes:  # after every panel has its data: the panels share their y-axis
        _log_y(ax)
    handles = _density_handles(palette, layers.loc[layers["method"].isin(methods), "density"])
    handles.append(_proxy("layer size (all weights)", color="0.65", lw=1.0))
    if any_zero:
        handles.append(_proxy("layer pruned entirely (0 kept)", color="0.3", ls="none", marker="v"))
    _legend(figure, handles)
    figure.suptitle(f"Kept weights per layer: {where}")
    return figure


@_styled
def spectra_figure(
    spectra: pd.DataFrame, palette: dict[float, Color] | None = None, ncols: int = 3
) -> Figure:
    """Top singular values of the input-output Jacobian at init (Figure 4), for one arch x data
    set x budget.

    ``spectra`` is :func:`storage.spectra`'s frame. One panel per method, one curve per density
    (``spectrum:D``, mean over seeds rank by rank), the dense spectrum as a dashed black line
    (``dense``) in every panel, and markers at the bottom for singular values that are exactly 0
    (``zero:D``; a spectrum that is identically 0 is a row of them).
    """
    spectra, where = _one_panel_set(spectra, "spectra_figure")
    methods = method_order(set(spectra["method"]) - {DENSE}) or [DENSE]
    palette = palette or density_palette(spectra["density"])
    mean = spectra.groupby(["method", "density", "rank"])["value"].mean()
    dense = mean.get(DENSE)
    figure, axes = _panels(len(methods), ncols)
    any_zero = False
    for ax, method in zip(axes, methods):
        if dense is not None and method != DENSE:
            for _, values in dense.groupby(level="density"):
                ranks = values.index.get_level_values("rank") + 1
                ax.plot(ranks, values.where(values > 0).to_numpy(), ls="--", color=DENSE_COLOR,
                        lw=1.2, gid="dense")  # fmt: skip
        for density, values in sorted(mean[method].groupby(level="density"), reverse=True):
            ranks = values.index.get_level_values("rank") + 1
            color = palette[density]
            ax.plot(
                ranks, values.where(values > 0).to_numpy(dtype=float), marker=".", color=color,
                gid=f"spectrum:{density:g}",
            )  # fmt: skip
            zeros = ranks[values.to_numpy() == 0]
            if len(zeros):
                _mark_zeros(ax, list(zeros), color, density)
                any_zero = True
        if (mean[method] > 0).any() or (dense is not None and (dense > 0).any()):
            _log_y(ax)
        else:  # nothing positive to scale a log axis by
            ax.set_yscale("log")
            ax.set_ylim(1e-1, 1e1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("singular value rank")
        ax.set_ylabel("singular value")
        ax.set_title(method_label(method))
    handles = _density_handles(palette, spectra.loc[spectra["method"].isin(methods), "density"])
    if dense is not None and methods != [DENSE]:
        handles.append(_proxy("dense", color=DENSE_COLOR, ls="--"))
    if any_zero:
        handles.append(_proxy("singular value exactly 0", color="0.3", ls="none", marker="v"))
    _legend(figure, handles)
    figure.suptitle(f"Input-output Jacobian spectrum at initialisation: {where}")
    return figure


def save_figure(figure: Figure, out_dir: Path, name: str) -> tuple[Path, Path]:
    """Write ``name.png`` (200 dpi) and ``name.svg`` into ``out_dir``; returns both paths."""
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with _style():
        figure.savefig(png, dpi=200, metadata={"Software": None})
        figure.savefig(svg, metadata={"Date": None})
    return png, svg
