"""The paper's Figure 1: best validation accuracy against the number of trainable parameters.

Every method on one network and budget, one curve per method over its densities (log x axis),
so Hyperplane Projection (Li et al., 2018), DCTpS, random pruning and the saliency methods are
compared at equal trainable parameters; the dense network is a single point. Drawn for any
network with ``hyperplane`` runs.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from reports.plotting import _legend, _panels, _proxy, _styled
from reports.style import method_label, method_marker, method_order, method_palette

SUBSPACE_METHOD = "hyperplane"


def has_subspace_runs(runs: pd.DataFrame) -> bool:
    """Whether ``runs`` holds finished Hyperplane Projection runs (Figure 1 applies)."""
    finished = runs[runs["status"] == "finished"]
    return bool(finished["method"].str.split(":").str[0].eq(SUBSPACE_METHOD).any())


def trainable_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of best validation accuracy per method and trainable-parameter count."""
    finished = runs[(runs["status"] == "finished") & runs["trainable_params"].notna()]
    grouped = finished.groupby(["method", "trainable_params"])["best_val_acc"]
    out = grouped.agg(["mean", "std"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


@_styled
def trainable_figure(runs: pd.DataFrame) -> Figure:
    """Figure 1 from :func:`storage.runs`'s frame of one arch x data set x budget."""
    points = trainable_points(runs)
    methods = method_order(points["method"].unique())
    palette = method_palette(methods)
    figure, (ax,) = _panels(1, 1)
    handles = []
    for method in methods:
        rows = points[points["method"] == method].sort_values("trainable_params")
        style = {"color": palette[method], "marker": method_marker(method)}
        ax.errorbar(
            rows["trainable_params"],
            rows["mean"],
            yerr=rows["std"],
            capsize=2,
            linestyle="-" if len(rows) > 1 else "none",
            gid=f"trainable:{method}",
            **style,
        )
        handles.append(_proxy(method_label(method), **style))
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("best validation accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    _legend(figure, handles)
    return figure
