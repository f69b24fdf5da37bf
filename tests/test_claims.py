"""The paper's claims checked from frames whose verdicts are known by construction."""

from __future__ import annotations

import pandas as pd
import pytest

from reports import claims
from reports.claims import (
    claim_1,
    claim_2,
    claim_3,
    claim_4,
    claim_5,
)
from reports.curves import collapse_density, mean_accuracy, zero_spectrum_density

GRID = [0.1, 0.01, 0.001, 0.0001]
BUDGET = "adam, 10 epochs, all images"


def runs_frame(rows: list[tuple], budget: str = BUDGET) -> pd.DataFrame:
    """Rows of (method, density, seed, status, test_acc[, arch[, reason[, num_classes]]])."""
    out = []
    for i, row in enumerate(rows):
        method, density, seed, status, acc, *rest = row
        arch = rest[0] if rest else "mlp"
        reason = rest[1] if len(rest) > 1 else (None if status == "finished" else "failed")
        out.append(
            {
                "id": i,
                "method": method,
                "arch": arch,
                "dataset": "digits",
                "budget": budget,
                "num_classes": rest[2] if len(rest) > 2 else None,
                "seed": seed,
                "density": density,
                "status": status,
                "test_acc": acc if status == "finished" else None,
                "reason": reason,
            }
        )
    return pd.DataFrame(out)


def curves(table: dict[str, list[float]], seeds: int = 1) -> pd.DataFrame:
    """A runs frame with ``table[method]`` = accuracies over GRID (None: a failed run)."""
    rows: list[tuple] = [("dense", 1.0, s, "finished", 0.95) for s in range(seeds)]
    for method, accs in table.items():
        for density, acc in zip(GRID, accs):
            for seed in range(seeds):
                status = "failed" if acc is None else "finished"
                rows.append((method, density, seed, status, acc))
    return runs_frame(rows)


def test_failed_runs_count_as_chance_in_the_mean() -> None:
    frame = runs_frame([("snip", 0.01, 0, "finished", 0.5), ("snip", 0.01, 1, "failed", None)])
    acc = mean_accuracy(frame)
    assert acc["mean"].tolist() == [pytest.approx((0.5 + 0.1) / 2)]
    assert acc[["n", "failed"]].to_numpy().tolist() == [[2, 1]]


def test_chance_is_the_recorded_class_count_first() -> None:
    """A run that recorded 4 classes fails at 1/4, whatever the data set's built-in count; a
    run recorded before class counts existed falls back to the data set's (digits: 10)."""
    recorded = runs_frame([("snip", 0.01, 0, "failed", None, "mlp", "x", 4)])
    assert mean_accuracy(recorded)["mean"].tolist() == [0.25]
    assert mean_accuracy(recorded)["chance"].tolist() == [0.25]
    old = runs_frame([("snip", 0.01, 0, "failed", None, "mlp", "x", None)])
    assert mean_accuracy(old)["mean"].tolist() == [pytest.approx(0.1)]
    assert mean_accuracy(old.drop(columns="num_classes"))["mean"].tolist() == [pytest.approx(0.1)]


def test_budgets_are_never_averaged_together() -> None:
    one = "adam, 1 epoch, all images"
    short = runs_frame(
        [("dense", 1.0, 0, "finished", 0.95), ("snip", 0.1, 0, "finished", 0.5)], budget=one
    )
    long = runs_frame([("dense", 1.0, 0, "finished", 0.9), ("snip", 0.1, 0, "finished", 0.88)])
    acc = mean_accuracy(pd.concat([short, long], ignore_index=True))
    snip = acc[acc["method"] == "snip"]
    assert snip[["budget", "mean", "n"]].to_numpy().tolist() == [[one, 0.5, 1], [BUDGET, 0.88, 1]]
    # Each budget is its own series for the claims, against its own dense baseline.
    verdict = claim_1(acc)
    assert verdict.holds is False
    assert [line.split(";")[:2] for line in verdict.evidence] == [
        [f"mlp on digits ({one}): dense 95.00%", " largest gap -45.00 points (snip at 0.1)"],
        [f"mlp on digits ({BUDGET}): dense 90.00%", " largest gap -2.00 points (snip at 0.1)"],
    ]


def test_collapse_and_zero_spectrum_densities() -> None:
    curve = pd.Series([0.9, 0.6, 0.12, 0.1], index=GRID)
    assert collapse_density(curve, 0.1) == 0.001
    # A density at chance above a good one is not a collapse "all the way down".
    assert collapse_density(pd.Series([0.1, 0.6, 0.5, 0.4], index=GRID), 0.1) is None
    assert zero_spectrum_density(pd.Series([1.0, 0.3, 0.0, 0.0], index=GRID)) == 0.001
    assert zero_spectrum_density(pd.Series([1.0, 0.0, 0.2, 0.0], index=GRID)) == 0.0001


def test_claim_1_finds_the_cell_far_from_dense() -> None:
    close = mean_accuracy(curves({"snip": [0.93, 0.5, 0.2, 0.1]}))
    assert claim_1(close).holds is True
    far = mean_accuracy(curves({"snip": [0.93, 0.5, 0.2, 0.1], "grasp": [0.80, 0.5, 0.1, 0.1]}))
    verdict = claim_1(far)
    assert verdict.holds is False
    assert "largest gap -15.00 points (grasp at 0.1)" in verdict.evidence[0]


def test_claim_2_holds_only_with_every_part() -> None:
    good = {
        "random": [0.9, 0.1, 0.1, 0.1],
        "epl": [0.9, 0.5, 0.1, 0.1],
        "dctps": [0.9, 0.8, 0.6, 0.4],
        "synflow": [0.9, 0.7, 0.5, 0.3],
    }
    assert claim_2(mean_accuracy(curves(good))).holds is True
    # DCTpS second at the lowest density: the claim fails.
    beaten = {**good, "synflow": [0.9, 0.7, 0.5, 0.45]}
    assert claim_2(mean_accuracy(curves(beaten))).holds is False
    # EPL collapses as early as uniform: "uniform first" fails.
    same = {**good, "epl": [0.9, 0.1, 0.1, 0.1]}
    verdict = claim_2(mean_accuracy(curves(same)))
    assert verdict.holds is False
    assert "collapse density uniform 0.01, EPL 0.01, DCTpS never" in verdict.evidence[-1]


def test_claim_2_names_the_densities_where_dctps_leads() -> None:
    table = {
        "random": [0.9, 0.1, 0.1, 0.1],
        "epl": [0.95, 0.5, 0.1, 0.1],
        "dctps": [0.9, 0.8, 0.12, 0.1],
        "synflow": [0.9, 0.7, 0.5, 0.1],
    }
    evidence = claim_2(mean_accuracy(curves(table))).evidence
    # 0.1: EPL leads; 0.001: SynFlow; 0.0001: all at chance, so nobody leads
    assert (
        "mlp on digits (adam, 10 epochs, all images): DCTpS has the best mean (above chance) "
        "at 0.01" in evidence
    )
    tied = {**table, "dctps": [0.95, 0.1, 0.1, 0.1], "synflow": [0.9, 0.1, 0.1, 0.1]}
    assert "best mean (above chance) at 0.1" in claim_2(mean_accuracy(curves(tied))).evidence[-2]
    none = {**table, "dctps": [0.1, 0.1, 0.1, 0.1]}
    assert claim_2(mean_accuracy(curves(none))).evidence[-2].endswith("at no density")


def test_claim_3_needs_an_extreme_failure_and_fixup() -> None:
    rows = [
        ("force", 0.1, 0, "finished", 0.9),
        ("force", 0.0001, 0, "failed", None, "mlp", "FORCE step 60/60: all zero"),
        ("force", 0.01, 0, "failed", None, "fixup_resnet110", "FORCE step 1/60: all zero"),
        ("itersnip", 0.1, 0, "failed", None, "mlp", "Iter-SNIP step 1/60: zero saliency"),
        ("itersnip", 0.01, 0, "finished", 0.5, "fixup_resnet110"),
    ]
    force, itersnip = claim_3(runs_frame(rows))
    assert force.holds is True
    assert f"mlp on digits ({BUDGET}): 1 of 2 runs failed, at densities 0.0001" in force.evidence
    assert "fixup_resnet110: 1 of 1 runs failed (FORCE step 1/60: all zero)" in force.evidence
    assert itersnip.holds is False  # no failure at <= 0.001, and Fixup trained
    # One verdict per method, each with its own title (its own section of the report).
    assert (force.title, itersnip.title) == ("Claim 3 (FORCE)", "Claim 3 (Iter-SNIP)")
    text = claims.claims_markdown([force, itersnip])
    assert text.count("### Claim 3 (FORCE): holds\n") == 1
    assert text.count("### Claim 3 (Iter-SNIP): does not hold\n") == 1
    assert text.count("### ") == 2


def spectra_frame(top: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for method, values in top.items():
        for density, value in zip(GRID, values):
            for rank, scale in ((0, 1.0), (1, 0.5)):
                rows.append(
                    {
                        "arch": "mlp",
                        "dataset": "digits",
                        "budget": BUDGET,
                        "method": method,
                        "density": density,
                        "seed": 0,
                        "rank": rank,
                        "value": value * scale,
                    }
                )
    return pd.DataFrame(rows)


def test_claim_4_compares_collapse_with_zero_spectrum() -> None:
    acc = mean_accuracy(
        curves({"random": [0.9, 0.1, 0.1, 0.1], "epl": [0.9, 0.5, 0.1, 0.1], "dctps": [0.9] * 4})
    )
    matching = spectra_frame(
        {"random": [1.0, 0.0, 0.0, 0.0], "epl": [1.0, 0.4, 0.0, 0.0], "dctps": [0.62] * 4}
    )
    assert claim_4(acc, matching).holds is True
    late = spectra_frame(
        {"random": [1.0, 0.2, 0.0, 0.0], "epl": [1.0, 0.4, 0.0, 0.0], "dctps": [0.62] * 4}
    )
    verdict = claim_4(acc, late)
    assert verdict.holds is False
    assert "random: collapses to chance from 0.01, spectrum identically zero from 0.001" in (
        " ".join(verdict.evidence)
    )
    moving = spectra_frame(
        {
            "random": [1.0, 0.0, 0.0, 0.0],
            "epl": [1.0, 0.4, 0.0, 0.0],
            "dctps": [0.62, 0.6, 0.62, 0.62],
        }
    )
    assert claim_4(acc, moving).holds is False


def layers_frame(kept: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = []
    for method, per_layer in kept.items():
        for density in claims.SHORTCUT_DENSITIES:
            for name, count in per_layer.items():
                rows.append(
                    {
                        "arch": "resnet18",
                        "dataset": "digits",
                        "budget": BUDGET,
                        "method": method,
                        "density": density,
                        "seed": 0,
                        "name": name,
                        "kept": count,
                        "total": 1000,
                    }
                )
    return pd.DataFrame(rows)


def test_claim_5_checks_shortcuts_and_spread() -> None:
    uniform = {"conv1": 10, "layer1.conv": 100, "layer4.conv": 1000, "layer2.shortcut.0": 5}
    equal = {"conv1": 100, "layer1.conv": 110, "layer4.conv": 90, "layer2.shortcut.0": 0}
    assert claim_5(layers_frame({"synflow": equal, "random": uniform})).holds is True
    kept_shortcut = {**equal, "layer2.shortcut.0": 3}
    assert claim_5(layers_frame({"synflow": kept_shortcut, "random": uniform})).holds is False
    proportional = {**uniform, "layer2.shortcut.0": 0}
    assert claim_5(layers_frame({"synflow": proportional, "random": uniform})).holds is False
    # No shortcut layers at all: the claim is not checked there.
    assert claim_5(layers_frame({"synflow": {"conv1": 5}, "random": {"conv1": 5}})).holds is None


def test_markdown_names_statement_verdict_and_criterion() -> None:
    verdict = claims.Verdict(1, False, ["mlp on digits: dense 95.00%"])
    text = claims.claims_markdown([verdict])
    assert text.startswith("### Claim 1: does not hold\n")
    assert claims.STATEMENTS[1] in text and claims.CRITERIA[1] in text
    assert "- mlp on digits: dense 95.00%" in text
