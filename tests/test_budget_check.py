"""The budget check: a series' dense network against itself at twice the epochs, found in the
database, with everything else in the budget equal; and the report's claims file states it."""

from __future__ import annotations

from pathlib import Path

import pytest
from known_rows import Row, fill_known_rows

import reports
import storage
from reports.budget_check import budget_checks, budget_markdown, budget_summary


def budget(epochs: int, subset: int = 10_000, **more: object) -> dict[str, object]:
    return {"preset": "adam", "epochs": epochs, "train_subset": subset, **more}


def rows() -> list[Row]:
    """lenet5: 30 epochs (dense 0.86, 0.88) with a check at 60 (0.89, 0.91); mlp: 10 epochs
    (0.70) with a check at 20 (0.80, too short) and runs at 20 epochs on other images (not its
    double); a failed dense run at 60 and sparse runs that the check ignores."""
    lenet, mlp = ("lenet5", "fashion-mnist"), ("mlp", "digits")
    return [
        Row(*lenet, "dense", 1.0, 0, 0.86, budget=budget(30)),
        Row(*lenet, "dense", 1.0, 1, 0.88, budget=budget(30, precision="32")),
        Row(*lenet, "epl", 0.01, 0, 0.10, budget=budget(30)),
        Row(*lenet, "dense", 1.0, 0, 0.89, budget=budget(60)),
        Row(*lenet, "dense", 1.0, 1, 0.91, budget=budget(60)),
        Row(*lenet, "dense", 1.0, 2, None, "loss is nan", budget=budget(60)),
        Row(*lenet, "epl", 0.01, 0, 0.99, budget=budget(60)),
        Row(*mlp, "dense", 1.0, 0, 0.70, budget=budget(10, 1000)),
        Row(*mlp, "dense", 1.0, 0, 0.80, budget=budget(20, 1000)),
        Row(*mlp, "dense", 1.0, 0, 0.99, budget=budget(20, 500)),
        Row(*mlp, "dense", 1.0, 0, 0.99, budget=budget(40, 1000, batch_size=32)),
    ]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    engine = storage.open_db(f"sqlite:///{tmp_path_factory.mktemp('db') / 'budget.db'}")
    fill_known_rows(engine, rows())
    return engine


def test_each_series_is_paired_with_its_double_only(engine) -> None:
    checks = {(c.arch, c.epochs): c for c in budget_checks(storage.runs(engine))}
    assert set(checks) == {("lenet5", 30), ("mlp", 10)}
    lenet = checks["lenet5", 30]
    assert (lenet.runs, lenet.double_runs) == (2, 2)  # precision 32 is the default budget
    assert lenet.mean == pytest.approx(0.87) and lenet.double_mean == pytest.approx(0.90)
    assert lenet.gap == pytest.approx(0.03) and not lenet.long_enough
    mlp = checks["mlp", 10]
    assert mlp.double_budget == "adam, 20 epochs, 1,000 images"
    assert mlp.gap == pytest.approx(0.10) and not mlp.long_enough


def test_within_two_points_is_long_enough(tmp_path: Path) -> None:
    engine = storage.open_db(f"sqlite:///{tmp_path / 'close.db'}")
    fill_known_rows(
        engine,
        [
            Row("mlp", "digits", "dense", 1.0, 0, 0.900, budget=budget(10)),
            Row("mlp", "digits", "dense", 1.0, 0, 0.915, budget=budget(20)),
        ],
    )
    (check,) = budget_checks(storage.runs(engine))
    assert check.long_enough and "+1.50 points, long enough" in check.line()
    assert budget_summary([check]) == "every budget checked is long enough"
    assert budget_summary([]) == "no budget has a check"


def test_the_claims_file_states_the_check(engine, tmp_path: Path) -> None:
    reports.build_report(engine, tmp_path, claims=True)
    text = (tmp_path / "claims.md").read_text()
    assert "### Budget check" in text
    assert "lenet5 on fashion-mnist (adam, 30 epochs, 10,000 images): dense 87.00% (2 runs)" in text
    assert "+3.00 points, too short" in text
    assert budget_markdown([]).endswith(
        "no series has its dense network also trained at twice the epochs\n"
    )
