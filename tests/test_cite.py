"""Results you can cite: failed runs retried, older code's runs re-trained, crashes counted in
the exit status, bad input stopped before any file exists, queries in percent without noise."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

import storage
from bench import pipeline
from bench.cli import main
from storage.schema import Run

GRID = ["run", "--methods", "epl", "--densities", "0.1", "--epochs", "1", "--train-subset", "100"]


def _args(db_url: str, tmp_path: Path) -> list[str]:
    # One at a time: the crash is injected into fit_and_test, the unstacked training call.
    runs = str(tmp_path / "runs")
    return [*GRID, "--db", db_url, "--runs-dir", runs, "--no-progress", "--stack", "off"]


def test_a_crash_exits_1_and_a_fixed_run_is_retried(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real_fit = pipeline.fit_and_test

    def diverging(*args, **kwargs):
        raise RuntimeError("the optimizer diverged")

    monkeypatch.setattr(pipeline, "fit_and_test", diverging)
    assert main(_args(db_url, tmp_path)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bench: 2 of 2 runs crashed")
    monkeypatch.setattr(pipeline, "fit_and_test", real_fit)
    assert main(_args(db_url, tmp_path)) == 0  # failed runs are results: skipped
    assert "skipped 2 of 2 runs" in capsys.readouterr().out
    assert main([*_args(db_url, tmp_path), "--retry-failed", "no such reason"]) == 0
    assert set(storage.runs(storage.open_db(db_url))["status"]) == {"failed"}
    assert main([*_args(db_url, tmp_path), "--retry-failed", "diverged"]) == 0
    assert "training 2 stored runs again" in capsys.readouterr().out
    engine = storage.open_db(db_url)
    frame = storage.runs(engine)
    assert frame["status"].tolist() == ["finished", "finished"]
    assert frame["attempts"].tolist() == [2, 2]
    history = storage.failures(engine)
    assert history["reason"].tolist() == ["the optimizer diverged"] * 2, "earlier failures stay"
    epochs = storage.epoch_metrics(engine)
    assert epochs.groupby("run_id").size().tolist() == [1, 1]


def test_rerun_older_than_retrains_what_older_code_recorded(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(_args(db_url, tmp_path)) == 0
    engine = storage.open_db(db_url)
    with engine.begin() as conn:
        conn.execute(update(Run).where(Run.method == "epl").values(paibench_version="0.0.9"))
    assert main([*_args(db_url, tmp_path), "--rerun-older-than", "0.1.0"]) == 0
    assert "training 1 stored runs again" in capsys.readouterr().out
    frame = storage.runs(engine).set_index("method")
    assert frame.loc["epl", "attempts"] == 2 and frame.loc["dense", "attempts"] == 1
    assert frame.loc["epl", "paibench_version"] != "0.0.9"


def _plugin(tmp_path: Path, text: str) -> str:
    path = tmp_path / "plugin.py"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--plugin", "missing.py"], "missing.py"),
        (["--plugin", "SYNTAX"], "line 1"),
        (["--methods", "synflow:steps=-5"], "steps=-5"),
        (["--densities", ""], "no density given"),
        (["--db", "notaurl"], "bad database URL 'notaurl'"),
        (["--rerun-older-than", "not a version"], "bad version 'not a version'"),
        (["--datasets", "fashion-mnist", "--data-dir", "CORRUPT"], "corrupt data file"),
    ],
)
def test_bad_input_is_one_line_before_any_file(
    extra: list[str],
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    if "SYNTAX" in extra:
        extra = [_plugin(tmp_path, "def broken(:\n") if x == "SYNTAX" else x for x in extra]
    if "CORRUPT" in extra:
        data = tmp_path / "fashion"
        data.mkdir()
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            (data / f"{name}.gz").write_bytes(b"\x1f\x8b\x08\x00 truncated")
        extra = [str(data) if x == "CORRUPT" else x for x in extra]
    args = ["run", "--methods", "epl", "--densities", "0.1", "--epochs", "1", *extra]
    try:
        code = main([*args, "--runs-dir", str(tmp_path / "runs")])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert needle in err[0]
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / "notaurl").exists()
    assert not (tmp_path / "runs").exists()


def test_queries_say_percent_and_csv_has_no_row_numbers(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(_args(db_url, tmp_path)) == 0
    capsys.readouterr()
    assert main(["query", "accuracy", "--db", db_url, "--format", "csv"]) == 0
    header, *rows = capsys.readouterr().out.strip().splitlines()
    assert header.startswith("arch,dataset,budget,method,density,mean_%")
    frame = storage.accuracy(storage.open_db(db_url))
    dense = next(row for row in rows if ",dense," in row)
    mean = round(100 * float(frame.loc[frame["method"] == "dense", "mean"].item()), 2)
    assert f",{mean}," in dense  # percent, rounded to what was measured
    assert main(["query", "runs", "--db", db_url, "--seed", "0", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "paibench_version" in out and "adam, 1 epoch, 100 images" in out
    assert main(["query", "runs", "--db", db_url, "--epochs", "2", "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1  # the header alone
