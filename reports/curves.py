"""Curves read off accuracy and spectrum frames: mean accuracy with failures at chance, and the
density below which a curve has collapsed (to chance, or to a zero spectrum)."""

from __future__ import annotations

import pandas as pd

from reports.style import chance_accuracy

AT_CHANCE = 0.05  # a mean accuracy within 5 points of chance is "at chance" (collapsed)


def mean_accuracy(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean test accuracy per arch x dataset x method x density; failed runs count as chance.

    ``runs`` is :func:`storage.runs`'s frame. Columns: arch, dataset, method, density, mean,
    n (runs), failed (runs).
    """
    done = runs[runs["status"].isin(["finished", "failed"])].copy()
    if done.empty:
        return pd.DataFrame(columns=["arch", "dataset", "method", "density", "mean", "n", "failed"])
    chance = done["dataset"].map(chance_accuracy)
    done["acc"] = done["test_acc"].where(done["status"] == "finished", chance)
    done["is_failed"] = done["status"] == "failed"
    keys = ["arch", "dataset", "method", "density"]
    return (
        done.groupby(keys)
        .agg(mean=("acc", "mean"), n=("acc", "size"), failed=("is_failed", "sum"))
        .reset_index()
    )


def collapse_density(curve: pd.Series, chance: float) -> float | None:
    """Highest density from which the accuracy stays within AT_CHANCE of chance all the way down.

    ``curve`` is mean accuracy indexed by density. None: it is above that at the lowest density.
    """
    collapsed = None
    for density in sorted(curve.index):  # lowest first
        if curve[density] <= chance + AT_CHANCE:
            collapsed = density
        else:
            break
    return collapsed


def zero_spectrum_density(top: pd.Series) -> float | None:
    """Highest density from which the top singular value is exactly 0 all the way down."""
    zero = None
    for density in sorted(top.index):
        if top[density] == 0.0:
            zero = density
        else:
            break
    return zero
