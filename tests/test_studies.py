"""Study presets (``bench run --study paper-mini``) and the table ``bench run`` ends with."""

from __future__ import annotations

from pathlib import Path

import pytest

import storage
from bench import studies
from bench.cli import main
from bench.errors import BenchError
from bench.grid import DENSITY_GRID, GridSpec
from bench.resolve import arch_preset
from bench.studies import PAPER_METHODS, STUDIES, Block, Study, study_configs


def test_paper_mini_is_the_issues_grid() -> None:
    study = STUDIES["paper-mini"]
    configs = study_configs(study.only(SHORT_BLOCKS))
    assert len(configs) == 3 * (3 * (8 * 10 + 1)) + 5
    assert len({c.config_hash() for c in configs}) == len(configs)
    main_blocks = [c for c in configs if c.arch != "fixup_resnet110"]
    assert {(c.arch, c.dataset) for c in main_blocks} == {
        ("mlp", "digits"),
        ("lenet5", "fashion-mnist"),
        ("resnet18_w16", "fashion-mnist"),
    }
    for arch in ("mlp", "lenet5", "resnet18_w16"):
        block = [c for c in main_blocks if c.arch == arch]
        assert {c.method for c in block} == {"dense", *PAPER_METHODS}
        assert {"dense", "random", "epl", "snip", "grasp", "force", "synflow", "dctps"} <= {
            c.method for c in block
        }
        assert sorted({c.density for c in block if c.method != "dense"}) == sorted(DENSITY_GRID)
        assert {c.seed for c in block} == {0, 1, 2}
        assert all(c.spectrum for c in block)  # claim 4 needs every run's spectrum
    fixup = [c for c in configs if c.arch == "fixup_resnet110"]
    assert {c.method for c in fixup} == {"dense", "snip", "force", "itersnip", "synflow"}
    # The budget is part of each run's identity, so a changed budget is a new run.
    lenet = next(c for c in main_blocks if c.arch == "lenet5")
    assert (lenet.epochs, lenet.train_subset) == (10, 5000)


SHORT_BLOCKS = ("mlp-short", "lenet5-short", "resnet18-short", "fixup")


def test_the_long_budget_meets_the_issues_step_counts() -> None:
    """Issue 17: LeNet-5's whole grid (9 methods, Hyperplane, dense; 3 seeds) at no fewer than
    4,000 optimizer steps, the ResNet at 1%, 0.1%, 0.01% and seed 0 at no fewer than 2,000,
    and each dense network again at twice its budget."""
    study = STUDIES["paper-mini"]
    assert [b.name for b in study.blocks if b.part == "short budget"] == list(SHORT_BLOCKS)
    lenet = study_configs(study.only(["lenet5-long"]))
    assert len(lenet) == 3 * (10 * 10 + 1)
    assert {c.method for c in lenet} == {"dense", *PAPER_METHODS, "epf", "hyperplane"}
    resnet = study_configs(study.only(["resnet18-long"]))
    assert len(resnet) == 10 * 3 + 1
    assert {c.density for c in resnet} == {1.0, 0.01, 0.001, 0.0001}
    for configs, steps in ((lenet, 4000), (resnet, 2000)):
        c = configs[0]
        trained = c.train_subset - round(0.1 * c.train_subset)
        batch = arch_preset(c.preset, c.arch).batch_size  # 64 for LeNet-5, 128 for the ResNet
        assert c.epochs * -(-trained // batch) >= steps
        (check,) = {
            (x.epochs, x.train_subset, x.batch_size)
            for x in study_configs(study.only([f"{c.arch.split('_')[0]}-check"]))
        }
        assert check == (2 * c.epochs, c.train_subset, None)
    # The short budget's configs keep their hashes: the committed database still counts them.
    short = {c.config_hash() for c in study_configs(study.only(SHORT_BLOCKS))}
    assert not short & {c.config_hash() for c in lenet + resnet}


def test_blocks_select_part_of_a_study() -> None:
    with pytest.raises(BenchError, match=r"unknown block 'nope' of study paper-mini \(valid: "):
        STUDIES["paper-mini"].only(["nope"])
    assert main(["run", "--block", "fixup"]) == 2


def test_study_preset_rejects_grid_arguments(capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--study", "paper-mini", "--methods", "snip", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    needle = "--study paper-mini defines the whole grid and its budget; drop --methods, --epochs"
    assert needle in err
    assert err[-1] == "\n" and err.count("\n") == 1


def test_unknown_study_names_the_valid_ones() -> None:
    with pytest.raises(BenchError, match=r"unknown study 'nope' \(valid: paper-mini"):
        studies.get_study("nope")


def test_a_study_runs_end_to_end_into_its_own_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db_url = f"sqlite:///{tmp_path / 'tiny-study.db'}"
    tiny = Study(
        name="paper-mini",  # stands in for the real one: the CLI's choices are fixed at import
        description="two methods, one density",
        db=db_url,
        blocks=(
            Block(
                GridSpec(
                    methods=("epl", "dctps"),
                    densities=(0.05,),
                    archs=("mlp",),
                    datasets=("digits",),
                    settings={"epochs": 1, "train_subset": 200, "spectrum": True},
                )
            ),
        ),
    )
    monkeypatch.setitem(STUDIES, "paper-mini", tiny)
    args = ["run", "--study", "paper-mini", "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"grid: 3 runs -> {db_url}" in out
    assert "  mlp on digits: 3 runs (2 methods x 1 densities x 1 seeds + dense; adam" in out
    frame = storage.runs(storage.open_db(db_url))
    assert sorted(frame["method"]) == ["dctps", "dense", "epl"]
    assert set(frame["status"]) == {"finished"}
    assert len(storage.spectra(storage.open_db(db_url))["run_id"].unique()) == 3


def test_run_table_shows_failures_and_only_this_grid(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture
) -> None:
    common = ["--db", db_url, "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    # density 2e-6 keeps round(0.17) = 0 weights of the MLP: the allocation fails.
    grid = ["run", "--methods", "epl", "--densities", "0.1,0.000002", "--train-subset", "200"]
    assert main([*grid, "--epochs", "1", *common]) == 0
    out = capsys.readouterr().out
    assert out.count("Test accuracy (%) of mlp on digits") == 1
    assert "(adam, 1 epoch, 200 images)" in out
    failed_row = next(line for line in out.splitlines() if line.startswith("2e-06 "))
    assert failed_row.split() == ["2e-06", "failed"]
    dense_row = next(line for line in out.splitlines() if line.startswith("1 "))
    assert float(dense_row.split()[1]) > 10  # a percentage, over one seed: no ± std
    # The same grid at another budget: its table holds its own runs only, under its own name.
    assert main([*grid, "--epochs", "2", *common]) == 0
    out = capsys.readouterr().out
    assert out.count("Test accuracy (%) of mlp on digits") == 1
    assert "(adam, 2 epochs, 200 images)" in out and "1 epoch," not in out
    assert len(storage.runs(storage.open_db(db_url))) == 6
