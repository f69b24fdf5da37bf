"""Curves read off accuracy and spectrum frames: mean accuracy with failures at chance, and the
density below which a curve has collapsed (to chance, or to a zero spectrum)."""

from __future__ import annotations

import pandas as pd

from reports.style import budget_name, chance_accuracy

AT_CHANCE = 0.05  # a mean accuracy within 5 points of chance is "at chance" (collapsed)
MEAN_KEYS = ["arch", "dataset", "budget", "method", "density"]


def run_chance(runs: pd.DataFrame) -> pd.Series:
    """Chance accuracy of each run of :func:`storage.runs`'s frame: 1 / its recorded
    ``num_classes``, or the data set's built-in count for runs recorded without one."""
    classes = runs["num_classes"] if "num_classes" in runs.columns else [None] * len(runs)
    return pd.Series(
        [
            chance_accuracy(dataset, None if pd.isna(n) else int(n))
            for dataset, n in zip(runs["dataset"], classes)
        ],
        index=runs.index,
        dtype=float,
    )


def chance_by_dataset(runs: pd.DataFrame) -> dict[str, float]:
    """Chance accuracy per data set of :func:`storage.runs`'s frame (the most common of its
    runs' :func:`run_chance`), for figures and notes."""
    if runs.empty:
        return {}
    chance = run_chance(runs)
    return {
        str(dataset): float(values.mode().iloc[0])
        for dataset, values in chance.groupby(runs["dataset"])
    }


def mean_accuracy(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean test accuracy per arch x dataset x budget x method x density; failed runs count as
    chance (:func:`run_chance`: the run's recorded class count when it has one).

    ``runs`` is :func:`storage.runs`'s frame. Columns: arch, dataset, budget, method, density,
    mean, n (runs), failed (runs), chance.
    """
    done = runs[runs["status"].isin(["finished", "failed"])].copy()
    if done.empty:
        return pd.DataFrame(columns=[*MEAN_KEYS, "mean", "n", "failed", "chance"])
    done["budget"] = [budget_name(b) for b in done["budget"]]
    done["chance"] = run_chance(done)
    done["acc"] = done["test_acc"].where(done["status"] == "finished", done["chance"])
    done["is_failed"] = done["status"] == "failed"
    return (
        done.groupby(MEAN_KEYS)
        .agg(
            mean=("acc", "mean"),
            n=("acc", "size"),
            failed=("is_failed", "sum"),
            chance=("chance", "max"),
        )
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


def leading_densities(sparse: pd.DataFrame, method: str, chance: float) -> list[float]:
    """The densities (descending) at which ``method`` has the best mean of ``sparse`` (one
    series of :func:`mean_accuracy`'s frame; ties count) more than :data:`AT_CHANCE` above
    chance: where every method is at chance, nobody leads."""
    leads = []
    for density in sorted(sparse["density"].unique(), reverse=True):
        at = sparse[sparse["density"] == density].set_index("method")["mean"]
        mine = at.get(method, -1.0)
        if mine >= at.max() and mine > chance + AT_CHANCE:
            leads.append(float(density))
    return leads
