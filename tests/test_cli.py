"""The bench command line end to end: rows in the DB, one-line errors, queries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

import storage
from bench.cli import main
from bench.grid import DENSITY_GRID
from storage.schema import AllocationCostRow, EpochMetric, LayerAllocation, Run


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_density_grid_is_the_papers() -> None:
    assert DENSITY_GRID == (0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001)


def test_run_writes_expected_rows(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "run",
        "--methods",
        "random",
        "epl",
        "--densities",
        "0.1,0.01",
        "--epochs",
        "2",
        "--db",
        db_url,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Test accuracy (%) of mlp on digits (adam, 2 epochs, all images)" in out
    engine = storage.open_db(db_url)
    frame = storage.runs(engine)
    assert len(frame) == 5  # dense baseline + 2 methods x 2 densities
    assert set(frame["status"]) == {"finished"}
    assert sorted(frame["method"]) == ["dense", "epl", "epl", "random", "random"]
    with storage.session_scope(engine) as session:
        runs = session.scalars(select(Run)).all()
        for run in runs:
            assert run.kept == round(run.density * run.total)
            assert run.total == 64 * 256 + 256 * 256 + 256 * 10
            assert 0.0 <= run.test_acc <= 1.0 and run.best_val_acc is not None
            assert run.config["epochs"] == 2 and run.config["seed"] == 0
            assert len(run.config_hash) == 16
            assert [m.epoch for m in run.epoch_metrics] == [0, 1]
            assert [layer.kept for layer in run.layers] and sum(
                layer.kept for layer in run.layers
            ) == run.kept
            assert run.cost is not None and run.cost.seconds >= 0
        assert session.scalar(select(func.count()).select_from(LayerAllocation)) == 5 * 3
        assert session.scalar(select(func.count()).select_from(EpochMetric)) == 5 * 2
        assert session.scalar(select(func.count()).select_from(AllocationCostRow)) == 5
    dense = frame[frame["method"] == "dense"].iloc[0]
    assert dense["test_acc"] > 0.8  # two epochs of Adam on digits are plenty for a dense MLP
    # Provenance on every run: the code, software and machine that trained it.
    assert frame["paibench_version"].notna().all() and frame["torch_version"].notna().all()
    assert set(frame["num_classes"]) == {10} and frame["threads"].ge(1).all()
    assert frame["allocation_seconds"].ge(0).all() and frame["host"].notna().all()
    # Running the same grid again trains nothing and says so.
    assert main(args) == 0
    assert "skipped 5 of 5 runs" in capsys.readouterr().out
    assert len(storage.runs(engine)) == 5


def test_query_formats(tmp_path: Path, db_url: str) -> None:
    assert (
        main(
            [
                "run",
                "--methods",
                "epl",
                "--densities",
                "0.1",
                "--epochs",
                "1",
                "--threads",
                "1",
                "--db",
                db_url,
                "--runs-dir",
                str(tmp_path / "runs"),
                "--no-progress",
            ]
        )
        == 0
    )
    rows = json.loads(bench("query", "--db", db_url, "--format", "json").stdout)
    assert [r["method"] for r in rows] == ["dense", "epl"]
    filtered = json.loads(
        bench("query", "--db", db_url, "--format", "json", "--method", "epl").stdout
    )
    assert [r["method"] for r in filtered] == ["epl"]
    csv = bench("query", "--db", db_url, "--format", "csv").stdout
    assert csv.splitlines()[0].startswith("id,config_hash,method")
    markdown = bench("query", "accuracy", "--db", db_url, "--format", "markdown").stdout
    header, _, *body = markdown.strip().splitlines()
    assert "method" in header and "mean" in header and "std" in header
    assert any("epl" in row and "0.1" in row for row in body)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--densities", "1.5"], "density 1.5 is outside (0, 1]"),
        (["run", "--densities", "0"], "density 0 is outside (0, 1]"),
        (["run", "--densities", "abc"], "bad density 'abc'"),
        (["run", "--methods", "nope"], "unknown method 'nope' (valid: "),
        (
            ["run", "--methods", "epf:foo=1"],
            "unknown option 'foo' for method 'epf' (valid: within)",
        ),
        (["run", "--methods", "epf:within=row"], "bad value 'row' for option epf:within"),
        (["run", "--arch", "nope"], "unknown architecture 'nope' (valid: "),
        (["run", "--dataset", "nope"], "unknown dataset 'nope' (valid: digits"),
        (["run", "--preset", "nope"], "invalid choice: 'nope'"),
        (["run", "--study", "nope"], "invalid choice: 'nope'"),
        (["run", "--densities", ""], "no density given"),
        (["run", "--densities", "grid", "--db", "notaurl"], "bad database URL 'notaurl'"),
        (["run", "--epochs", "0"], "0 is not a positive integer"),
        (["run", "--threads", "0"], "0 is not a positive integer"),
        (["query", "--db", "sqlite:////nonexistent/x.db"], "does not exist"),
    ],
)
def test_bad_inputs_give_one_line_and_exit_2(
    args: list[str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors leave through SystemExit
        code = exit_.code
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert needle in lines[0]
    assert not (tmp_path / "bench.db").exists(), "a rejected grid must not create a database"


def test_console_error_has_no_traceback(tmp_path: Path) -> None:
    result = bench("run", "--methods", "nope", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines() == [result.stderr.strip()]
        and "unknown method 'nope'" in result.stderr
    )


def test_methods_and_archs_list(tmp_path: Path) -> None:
    out = bench("methods").stdout
    for name in ["random", "epl", "epf", "dense"]:
        assert name in out
    assert "within='layer'" in out and "built-in" in out
    archs = bench("archs").stdout
    assert "mlp" in archs and "small_cnn" in archs
    resnet50 = next(line for line in archs.splitlines() if line.split()[:1] == ["resnet50"])
    assert resnet50.split()[1:5] == ["23467712", "53130", "23520842", "54"]


def test_closing_table_fits_120_columns() -> None:
    """Ten methods over the paper's grid, three seeds: densities as rows, methods as columns."""
    import pandas as pd

    from bench.commands import TABLE_WIDTH, closing_table

    names = ["dense", "random", "epl", "epf", "snip", "grasp", "force", "itersnip", "synflow",
             "dctps"]
    rows = [
        ("mlp", "digits", "adam, 50 epochs, all images", m, d, 0.9123, 0.0456, 3, 0, None)
        for m in names[1:]
        for d in DENSITY_GRID
    ]
    rows.append(("mlp", "digits", "adam, 50 epochs, all images", "dense", 1.0, 0.97, 0.01, 3, 0,
                 None))
    rows.append(("mlp", "digits", "adam, 50 epochs, all images", "grasp", 0.0001, None, None, 0,
                 3, "zero saliency"))
    columns = ["arch", "dataset", "budget", "method", "density", "mean", "std", "n", "failed",
               "reason"]
    ((key, table),) = closing_table(pd.DataFrame(rows, columns=columns)).items()
    assert key == ("mlp", "digits", "adam, 50 epochs, all images")
    assert sorted(table.columns) == sorted(names) and table.columns[0] == "dense"
    assert list(table.index)[:2] == ["1", "0.1"]
    assert table.loc["0.1", "snip"] == "91.2±4.6" and table.loc["0.0001", "grasp"] == "failed"
    text = table.to_string(line_width=TABLE_WIDTH)
    assert max(len(line) for line in text.splitlines()) <= TABLE_WIDTH
