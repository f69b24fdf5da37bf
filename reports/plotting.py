"""The shared pieces of every figure: seaborn style, panels, legends, log axes, zero markers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec

import matplotlib as mpl
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
)
from matplotlib.transforms import blended_transform_factory

from reports.style import (
    Color,
    density_ticks,
    format_density,
)

PANEL_SIZE = (4.4, 3.3)  # inches per panel
MIN_ACCURACY_SPAN = 0.2  # the y-axis of an accuracy panel shows at least 20 points
LEGEND_HEIGHT = 0.7  # inches below the panels for the shared legend
LEGEND_COLUMN_WIDTH = 2.2  # inches per legend column
LEGEND_ROW_HEIGHT = 0.22  # inches per legend row beyond the two LEGEND_HEIGHT holds
ZERO_Y = 0.025  # height (axes fraction) of the markers for a zero on a log axis
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    "svg.fonttype": "none",
}
P = ParamSpec("P")


@contextmanager
def _style() -> Iterator[None]:
    with sns.axes_style("whitegrid"), mpl.rc_context(STYLE):
        yield


def _styled(function: Callable[P, Figure]) -> Callable[P, Figure]:
    """Build the figure under the report's style (seaborn whitegrid, paper font sizes)."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with _style():
            return function(*args, **kwargs)

    return wrapper


def _panels(count: int, ncols: int, sharey: bool = False) -> tuple[Figure, list[Axes]]:
    """A figure with ``count`` panels in rows of ``ncols`` and room for a legend below."""
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)
    figure = Figure(
        figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + LEGEND_HEIGHT),
        layout="constrained",
    )
    axes = list(figure.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel())
    for ax in axes[count:]:
        figure.delaxes(ax)
    return figure, axes[:count]


def _legend(figure: Figure, handles: list[Line2D]) -> None:
    """One legend for all panels, below them, in as many columns as the figure's width allows."""
    ncols = max(1, min(len(handles), int(figure.get_figwidth() / LEGEND_COLUMN_WIDTH)))
    rows = math.ceil(len(handles) / ncols)
    figure.set_figheight(figure.get_figheight() + LEGEND_ROW_HEIGHT * max(0, rows - 2))
    figure.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)


def _density_axis(ax: Axes, densities: Sequence[float]) -> None:
    """Log density axis with ticks 10%, 1%, 0.1%, ... and minor ticks at the 1-2-5 grid."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(density_ticks(densities)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_density(x)))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(densities) / 1.4, max(densities) * 1.4)
    ax.set_xlabel("density (trainable weights)")


def _mark_zeros(ax: Axes, x: Sequence[float], color: Color, density: float) -> None:
    """Markers at the bottom of a log axis where the value at ``density`` is exactly 0.

    Where several densities have a zero at the same x, the highest density's marker is on top.
    """
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot(
        x, [ZERO_Y] * len(x), ls="none", marker="v", ms=6, color=color, transform=transform,
        clip_on=False, zorder=3 + density, gid=f"zero:{density:g}",
    )  # fmt: skip


def _log_y(ax: Axes) -> None:
    """Log y-axis widened to whole decades, labelled at decades only."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(10.0 ** math.floor(math.log10(low)), 10.0 ** math.ceil(math.log10(high)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _proxy(label: str, **style: Any) -> Line2D:
    """A legend entry that is not drawn on any axes."""
    return Line2D([], [], label=label, **style)
