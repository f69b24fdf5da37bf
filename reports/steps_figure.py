"""Validation accuracy against optimizer steps: when each network leaves chance.

The paper reports only final accuracies; whether a sparse network is slow or unable to train
needs the curve. One panel per density (a few of the series' densities, spread over its range),
one line per method: the mean over seeds of the validation accuracy after each epoch, at the
optimizer steps taken by then (``epoch_metrics.steps``), the dense network dashed in every
panel and chance dotted.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from reports.plotting import _legend, _panels, _proxy, _styled
from reports.style import (
    DENSE,
    DENSE_COLOR,
    method_label,
    method_marker,
    method_order,
    method_palette,
)

PANELS = 3  # densities shown


def shown_densities(epochs: pd.DataFrame, panels: int = PANELS) -> list[float]:
    """Up to ``panels`` sparse densities of ``epochs``, highest, lowest and evenly between."""
    densities = sorted({float(d) for d in epochs.loc[epochs["method"] != DENSE, "density"]})
    if len(densities) <= panels:
        return densities[::-1]
    picks = {round(i * (len(densities) - 1) / (panels - 1)) for i in range(panels)}
    return [densities[i] for i in sorted(picks, reverse=True)]


def step_curves(epochs: pd.DataFrame) -> pd.DataFrame:
    """Mean validation accuracy per method, density and step (rows with known steps only)."""
    known = epochs[epochs["steps"].notna() & epochs["val_acc"].notna()]
    grouped = known.groupby(["method", "density", "steps"])["val_acc"]
    return grouped.mean().reset_index()


@_styled
def steps_figure(epochs: pd.DataFrame, chance: float) -> Figure:
    """The figure from :func:`storage.epoch_metrics`'s frame of one arch x data set x budget."""
    curves = step_curves(epochs)
    densities = shown_densities(curves)
    methods = method_order(set(curves["method"]) - {DENSE})
    palette = method_palette(methods)
    dense = curves[curves["method"] == DENSE].groupby("steps")["val_acc"].mean()
    figure, axes = _panels(max(len(densities), 1), len(densities) or 1)
    for ax, density in zip(axes, densities):
        if not dense.empty:
            ax.plot(dense.index, dense.to_numpy(), ls="--", color=DENSE_COLOR, gid="dense")
        for method in methods:
            rows = curves[(curves["method"] == method) & (curves["density"] == density)]
            if rows.empty:
                continue
            ax.plot(
                rows["steps"], rows["val_acc"], color=palette[method],
                marker=method_marker(method), markevery=max(len(rows) // 6, 1),
                gid=f"steps:{method}:{density:g}",
            )  # fmt: skip
        ax.axhline(chance, ls=":", color="grey", lw=1, gid="chance")
        ax.set_title(f"density {density:g}")
        ax.set_xlabel("optimizer steps")
        ax.set_ylabel("validation accuracy")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    handles = [_proxy(method_label(m), color=palette[m], marker=method_marker(m)) for m in methods]
    if not dense.empty:
        handles.append(_proxy(method_label(DENSE), color=DENSE_COLOR, ls="--"))
    _legend(figure, handles)
    return figure
