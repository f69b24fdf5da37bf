"""Is a budget long enough? The dense network at a budget against the same network at twice it.

A study's budget should answer its questions rather than fit a time: a block trains long enough
when its dense network is within :data:`WITHIN` of the accuracy it reaches with twice the
epochs, every other part of the budget (preset, training images, batch, precision, layout)
equal. The pairs are found in the database, so any study that also trains its dense network at
twice the epochs (paper-mini's ``*-check`` blocks) gets the check.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reports.style import DENSE, budget_name
from storage.spec import BUDGET_FIELDS

WITHIN = 0.02  # "within 2 points" (issue 17): test accuracy as a fraction
# every budget field but the epochs: what must be equal for two budgets to be compared
_SAME = ["arch", "dataset", *(f for f in BUDGET_FIELDS if f != "epochs")]


@dataclass(frozen=True)
class BudgetCheck:
    """The dense network of one series against itself at twice the epochs (test accuracy)."""

    arch: str
    dataset: str
    budget: str
    epochs: int
    mean: float
    runs: int
    double_budget: str
    double_mean: float
    double_runs: int

    @property
    def gap(self) -> float:
        """Points (as a fraction) the budget is below twice itself; negative when above."""
        return self.double_mean - self.mean

    @property
    def long_enough(self) -> bool:
        return self.gap <= WITHIN

    def line(self) -> str:
        verdict = "long enough" if self.long_enough else "too short"
        return (
            f"{self.arch} on {self.dataset} ({self.budget}): dense {100 * self.mean:.2f}% "
            f"({self.runs} runs) against {100 * self.double_mean:.2f}% ({self.double_runs} runs) "
            f"at {2 * self.epochs} epochs ({self.double_budget}): {100 * self.gap:+.2f} points, "
            f"{verdict} (criterion: within {100 * WITHIN:g} points)"
        )


def _key(row: pd.Series) -> str:
    """The budget of ``row`` without its epochs, as text; None and NaN count as the default."""
    return repr(tuple(None if pd.isna(row[f]) else row[f] for f in _SAME))


def budget_checks(runs: pd.DataFrame) -> list[BudgetCheck]:
    """Every finished dense series with a finished dense series at twice its epochs.

    ``runs`` is :func:`storage.runs`'s frame. Precision 32 and no precision are the same budget
    (:func:`storage.budget_label` writes them alike), so the key compares the labels' parts.
    """
    dense = runs[(runs["method"] == DENSE) & (runs["status"] == "finished")].copy()
    dense = dense[dense["epochs"].notna()]
    if dense.empty:
        return []
    dense["precision"] = [
        None if pd.isna(p) or str(p) in ("32", "32-true") else str(p) for p in dense["precision"]
    ]
    dense["channels_last"] = [bool(c) if not pd.isna(c) else False for c in dense["channels_last"]]
    dense["key"] = [_key(row) for _, row in dense.iterrows()]
    dense["epochs"] = dense["epochs"].astype(int)
    series = {name: group for name, group in dense.groupby(["key", "epochs"])}
    checks = []
    for (key, epochs), group in sorted(series.items()):
        double = series.get((key, 2 * epochs))
        if double is None:
            continue
        checks.append(
            BudgetCheck(
                arch=str(group["arch"].iloc[0]),
                dataset=str(group["dataset"].iloc[0]),
                budget=budget_name(group["budget"].iloc[0]),
                epochs=epochs,
                mean=float(group["test_acc"].mean()),
                runs=len(group),
                double_budget=budget_name(double["budget"].iloc[0]),
                double_mean=float(double["test_acc"].mean()),
                double_runs=len(double),
            )
        )
    return checks


def budget_summary(checks: list[BudgetCheck]) -> str:
    """One phrase for all the checks (a report item's title)."""
    if not checks:
        return "no budget has a check"
    if all(check.long_enough for check in checks):
        return "every budget checked is long enough"
    return "some budget is too short"


def budget_markdown(checks: list[BudgetCheck]) -> str:
    """The checks as a Markdown section (for claims.md)."""
    lines = [
        "### Budget check: is each budget long enough?",
        "",
        f"Criterion: the dense network's mean test accuracy is within {100 * WITHIN:g} points "
        "of its mean with twice the epochs, everything else in the budget equal.",
        "",
    ]
    lines += [f"- {check.line()}" for check in checks] or [
        "- no series has its dense network also trained at twice the epochs"
    ]
    return "\n".join([*lines, ""])
