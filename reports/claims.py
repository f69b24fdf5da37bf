"""The paper's five claims, checked against the database: a verdict and its numbers for each.

Every verdict is computed from :mod:`storage`'s query frames alone, by the criteria stated in
:data:`CRITERIA`, so that a study re-run on another machine or budget gets its own verdicts
rather than ours. Each arch x data set x training budget is checked on its own (runs of different
budgets are never averaged together). A config whose runs all failed counts as chance accuracy,
as in the paper (appendix D.1: "the test accuracy for FORCE is reported as equal to that of
random guessing"), chance being 1 / the class count the runs recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Engine

import storage
from reports.curves import (
    AT_CHANCE,
    collapse_density,
    leading_densities,
    mean_accuracy,
    zero_spectrum_density,
)
from reports.style import DENSE, DENSE_DENSITY, chance_accuracy, method_label
from reports.tables import TableKey, budgeted, rows_of

CLOSE_TO_DENSE = 0.05  # within 5 points of the dense baseline is "close to dense"
MODERATE = 0.05  # claim 1's "moderate density": 5% and above
EXTREME = 0.001  # claim 3's "extreme densities": 0.1% and below
SHORTCUT_DENSITIES = (0.05, 0.02, 0.01)  # claim 5's "moderate densities" for the ResNet check
LOWEST = 2  # claim 2: DCTpS must lead at the two lowest densities of the grid
# Claim 3's methods: (registry name, what the paper calls it, if that differs)
CLAIM_3_METHODS = (("force", ""), ("itersnip", "the paper's 'FORCE'"))
SPECTRUM_TOLERANCE = 1e-4  # claim 4: relative spread of DCTpS's top singular value over densities
EQUAL_PER_LAYER = 0.5  # claim 5: SynFlow's per-layer spread at most half uniform pruning's

CRITERIA = {
    1: f"every method's mean test accuracy at every density >= {MODERATE:g} is within "
    f"{100 * CLOSE_TO_DENSE:g} points of the dense baseline",
    2: f"'collapsed' = mean accuracy within {100 * AT_CHANCE:g} points of chance at that density "
    "and every lower one; uniform (random) collapses at a higher density than EPL (or EPL never "
    f"does), DCTpS never collapses, and DCTpS has the best mean at the {LOWEST} lowest densities",
    3: f"some run of the method failed (AllocationFailed) at a density <= {EXTREME:g} on a "
    "network other than Fixup, and every run of it on fixup_resnet110 failed",
    4: "for random and epl, the collapse density (claim 2) equals the highest density at which "
    "the mean top singular value of the input-output Jacobian at initialisation is 0 at that "
    "density and every lower one; DCTpS's top singular value varies by at most "
    f"{SPECTRUM_TOLERANCE:g} (relative) over densities",
    5: "on networks with 1x1 shortcut convolutions, SynFlow keeps 0 weights in every shortcut at "
    f"densities {', '.join(f'{d:g}' for d in SHORTCUT_DENSITIES)}, and the coefficient of "
    "variation of its kept weights over the other layers is at most "
    f"{EQUAL_PER_LAYER:g}x that of uniform pruning at the same density",
}
STATEMENTS = {
    1: "At moderate density (>= 5%) all methods are close to dense.",
    2: "Sparse (uniform) collapses first as density falls; Sparse (EPL) later; DCTpS never "
    "drops to chance at any density of the grid and is the most accurate at the lowest "
    "densities.",
    3: "FORCE fails (AllocationFailed) at some extreme densities on some networks, and on Fixup.",
    4: "The density at which a random method collapses to chance is the one at which its "
    "Jacobian spectrum at initialisation becomes zero; DCTpS's spectrum does not depend on "
    "density.",
    5: "SynFlow keeps roughly equal numbers of weights per layer and prunes ResNet's 1x1 "
    "shortcut convolutions entirely at moderate densities.",
}


@dataclass
class Verdict:
    """One claim: holds (True/False) or cannot be checked (None), with the numbers behind it.

    ``subject``: what this verdict is about when a claim has several (claim 3: one per method).
    """

    number: int
    holds: bool | None
    evidence: list[str] = field(default_factory=list)
    subject: str | None = None

    @property
    def label(self) -> str:
        return {True: "holds", False: "does not hold", None: "not checked"}[self.holds]

    @property
    def title(self) -> str:
        """``Claim 3 (FORCE)``: unique among the verdicts of :func:`check_claims`."""
        return f"Claim {self.number}" + (f" ({self.subject})" if self.subject else "")


def _all(values: Iterable[bool | None]) -> bool | None:
    """True if every checked part holds, False if one does not, None if none was checked."""
    checked = [v for v in values if v is not None]
    return None if not checked else all(checked)


def _fmt(density: float | None) -> str:
    return "never" if density is None else f"{density:g}"


def _series(frame: pd.DataFrame) -> list[TableKey]:
    """Every (arch, dataset, budget) of a budgeted frame, sorted."""
    return sorted(set(zip(frame["arch"], frame["dataset"], frame["budget"])))


def _name(key: TableKey) -> str:
    """``mlp on digits (adam, 10 epochs)``."""
    arch, dataset, budget = key
    return f"{arch} on {dataset} ({budget})"


def _curve(acc: pd.DataFrame, key: TableKey, method: str) -> pd.Series:
    rows = rows_of(acc, key)
    return rows[rows["method"] == method].set_index("density")["mean"].sort_index()


def _chance(acc: pd.DataFrame, key: TableKey) -> float:
    """Chance accuracy of a series: its runs' recorded class count (:func:`mean_accuracy`'s
    ``chance``), else the data set's built-in count."""
    rows = rows_of(acc, key)
    if "chance" in rows.columns and rows["chance"].notna().any():
        return float(rows["chance"].max())
    return chance_accuracy(key[1])


def claim_1(acc: pd.DataFrame) -> Verdict:
    verdict = Verdict(1, None)
    parts = []
    acc = budgeted(acc)
    for key in _series(acc):
        dense = _curve(acc, key, DENSE)
        if DENSE_DENSITY not in dense.index:
            continue
        pair = rows_of(acc, key)
        pair = pair[(pair["method"] != DENSE) & (pair["density"] >= MODERATE)]
        if pair.empty:
            continue
        gaps = (pair["mean"] - dense[DENSE_DENSITY]).abs()
        worst = pair.loc[gaps.idxmax()]
        far = pair[gaps > CLOSE_TO_DENSE]
        parts.append(far.empty)
        verdict.evidence.append(
            f"{_name(key)}: dense {100 * dense[DENSE_DENSITY]:.2f}%; largest gap "
            f"{100 * (worst['mean'] - dense[DENSE_DENSITY]):+.2f} points ({worst['method']} at "
            f"{worst['density']:g}); {len(far)} of {len(pair)} method x density cells further "
            f"than {100 * CLOSE_TO_DENSE:g} points"
            + (
                ": " + ", ".join(f"{r.method}@{r.density:g}" for r in far.itertuples())
                if not far.empty
                else ""
            )
        )
    verdict.holds = _all(parts)
    return verdict


def claim_2(acc: pd.DataFrame) -> Verdict:
    verdict = Verdict(2, None)
    parts = []
    acc = budgeted(acc)
    for key in _series(acc):
        chance = _chance(acc, key)
        curves = {m: _curve(acc, key, m) for m in ("random", "epl", "dctps")}
        if any(c.empty for c in curves.values()):
            continue
        collapse = {m: collapse_density(c, chance) for m, c in curves.items()}
        uniform_first = collapse["random"] is not None and (
            collapse["epl"] is None or collapse["random"] > collapse["epl"]
        )
        dctps_never = collapse["dctps"] is None
        sparse = rows_of(acc, key)
        sparse = sparse[sparse["method"] != DENSE]
        lowest = sorted(sparse["density"].unique())[:LOWEST]
        leads = []
        for density in lowest:
            at = sparse[sparse["density"] == density].set_index("method")["mean"]
            best = at.idxmax()
            leads.append(at.get("dctps", -1.0) >= at.max())
            verdict.evidence.append(
                f"{_name(key)} at {density:g}: DCTpS {100 * at.get('dctps', np.nan):.2f}%, "
                f"best {best} {100 * at.max():.2f}%"
            )
        parts.append(uniform_first and dctps_never and all(leads))
        leads_at = leading_densities(sparse, "dctps", chance)
        verdict.evidence.append(
            f"{_name(key)}: DCTpS has the best mean (above chance) at "
            + (", ".join(f"{d:g}" for d in leads_at) if leads_at else "no density")
        )
        verdict.evidence.append(
            f"{_name(key)}: collapse density uniform {_fmt(collapse['random'])}, EPL "
            f"{_fmt(collapse['epl'])}, DCTpS {_fmt(collapse['dctps'])}; DCTpS at the lowest "
            f"density {100 * curves['dctps'].iloc[0]:.2f}% (chance {100 * chance:g}%)"
        )
    verdict.holds = _all(parts)
    return verdict


def claim_3(runs: pd.DataFrame) -> list[Verdict]:
    """One verdict per method of :data:`CLAIM_3_METHODS`, titled by it (``Claim 3 (FORCE)``)."""
    runs = budgeted(runs)
    verdicts = []
    for method, note in CLAIM_3_METHODS:
        verdict = Verdict(3, None, [f"{method}: {note}"] if note else [], method_label(method))
        verdicts.append(verdict)
        mine = runs[(runs["method"] == method) & runs["status"].isin(["finished", "failed"])]
        if mine.empty:
            verdict.evidence.append("no runs")
            continue
        failed = mine[mine["status"] == "failed"]
        ordinary = failed[failed["arch"] != "fixup_resnet110"]
        extreme = ordinary[ordinary["density"] <= EXTREME]
        for key in _series(ordinary):
            group = rows_of(ordinary, key)
            densities = ", ".join(f"{d:g}" for d in sorted(group["density"].unique()))
            total = len(rows_of(mine, key))
            verdict.evidence.append(
                f"{_name(key)}: {len(group)} of {total} runs failed, at densities {densities}"
            )
        fixup = mine[mine["arch"] == "fixup_resnet110"]
        fixup_failed = None if fixup.empty else bool((fixup["status"] == "failed").all())
        if fixup.empty:
            verdict.evidence.append("fixup_resnet110: no runs")
        else:
            reasons = "; ".join(sorted(set(fixup["reason"].dropna())))
            verdict.evidence.append(
                f"fixup_resnet110: {int((fixup['status'] == 'failed').sum())} of {len(fixup)} "
                f"runs failed ({reasons})"
            )
        if ordinary.empty:
            verdict.evidence.append("no failure on any other network")
        verdict.holds = _all([not extreme.empty, fixup_failed])
    return verdicts


def claim_4(acc: pd.DataFrame, spectra: pd.DataFrame) -> Verdict:
    verdict = Verdict(4, None)
    parts = []
    if spectra.empty:
        verdict.evidence.append("no run stored a spectrum (bench run --spectrum)")
        return verdict
    acc, spectra = budgeted(acc), budgeted(spectra)
    top = (
        spectra[spectra["rank"] == 0]
        .groupby(["arch", "dataset", "budget", "method", "density"])["value"]
        .mean()
    )
    for key in _series(spectra):
        chance = _chance(acc, key)
        for method in ("random", "epl"):
            try:
                spectrum = top.loc[(*key, method)]
            except KeyError:
                continue
            curve = _curve(acc, key, method)
            collapse = collapse_density(curve, chance)
            zero = zero_spectrum_density(spectrum)
            parts.append(collapse == zero)
            verdict.evidence.append(
                f"{_name(key)}, {method}: collapses to chance from {_fmt(collapse)}, "
                f"spectrum identically zero from {_fmt(zero)}"
            )
        try:
            dctps = top.loc[(*key, "dctps")]
        except KeyError:
            continue
        spread = float((dctps.max() - dctps.min()) / dctps.abs().mean())
        parts.append(spread <= SPECTRUM_TOLERANCE)
        verdict.evidence.append(
            f"{_name(key)}, dctps: top singular value {dctps.mean():.4g} at every density "
            f"(relative spread {spread:.2g} over {len(dctps)} densities)"
        )
    verdict.holds = _all(parts)
    return verdict


def _variation(kept: pd.Series) -> float:
    return float(kept.std(ddof=0) / kept.mean()) if kept.mean() > 0 else float("nan")


def claim_5(layers: pd.DataFrame) -> Verdict:
    verdict = Verdict(5, None)
    parts = []
    layers = budgeted(layers)
    for key in _series(layers):
        pair = rows_of(layers, key)
        shortcut = pair["name"].str.contains("shortcut")
        if not shortcut.any():
            continue
        per_layer = (
            pair.assign(shortcut=shortcut)
            .groupby(["method", "density", "name", "shortcut"])["kept"]
            .mean()
            .reset_index()
        )
        for density in SHORTCUT_DENSITIES:
            syn = per_layer[(per_layer["method"] == "synflow") & (per_layer["density"] == density)]
            uni = per_layer[(per_layer["method"] == "random") & (per_layer["density"] == density)]
            if syn.empty:
                continue
            cut = syn[syn["shortcut"]]
            others = syn[~syn["shortcut"]]
            cv_syn = _variation(others["kept"])
            cv_uni = _variation(uni[~uni["shortcut"]]["kept"]) if not uni.empty else float("nan")
            equal = None if np.isnan(cv_uni) else cv_syn <= EQUAL_PER_LAYER * cv_uni
            parts.extend([bool((cut["kept"] == 0).all()), equal])
            in_shortcuts = ", ".join(f"{k:.3g}" for k in cut["kept"])
            verdict.evidence.append(
                f"{_name(key)} at {density:g}: SynFlow keeps "
                f"{in_shortcuts} weights in the {len(cut)} shortcuts; "
                f"other layers {others['kept'].min():.4g} to {others['kept'].max():.4g} "
                f"(coefficient of variation {cv_syn:.2f}; uniform pruning {cv_uni:.2f})"
            )
    verdict.holds = _all(parts)
    return verdict


def check_claims(engine: Engine) -> list[Verdict]:
    """Every claim's verdict from the database behind ``engine``."""
    runs = storage.runs(engine)
    acc = mean_accuracy(runs)
    return [
        claim_1(acc),
        claim_2(acc),
        *claim_3(runs),
        claim_4(acc, storage.spectra(engine)),
        claim_5(storage.layer_allocation(engine)),
    ]


def claims_markdown(verdicts: list[Verdict]) -> str:
    """The verdicts as Markdown, one section each (``### Claim 3 (FORCE): holds``): statement,
    verdict, criterion, numbers."""
    lines = []
    for verdict in verdicts:
        lines += [
            f"### {verdict.title}: {verdict.label}",
            "",
            f"> {STATEMENTS[verdict.number]}",
            "",
            f"Criterion: {CRITERIA[verdict.number]}.",
            "",
        ]
        lines += [f"- {line}" for line in verdict.evidence] or ["- no data"]
        lines.append("")
    return "\n".join(lines)
