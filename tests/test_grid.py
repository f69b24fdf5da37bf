"""Grids that survive: nothing trained twice, failures recorded, SIGKILLed runs resumed from
their last checkpoint (the dead run handed on by Optuna's heartbeat), stale claims taken over,
and the Jacobian spectrum at initialisation."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select

import architectures
import methods
import storage
from bench import pipeline
from bench.config import RunConfig
from bench.grid import GridSpec
from bench.scheduling.pool import run_grid
from bench.scheduling.queue import identity
from bench.settings import QueueSettings
from bench.spectrum import jacobian_spectrum, spectrum_batch
from storage.ledger import Ledger, aware
from storage.schema import EpochMetric, Failure, Run

SMALL = {"epochs": 1, "train_subset": 200}


# A dead worker's trial is found stale (and its run handed on) within seconds.
FAST = QueueSettings(heartbeat_interval=1, grace_period=2, poll=0.2)


def grid(methods_: list[tuple[str, dict]], densities: list[float], **common) -> list[RunConfig]:
    specs = [name + (":" + ",".join(f"{k}={v}" for k, v in o.items()) if o else "")
             for name, o in methods_]
    spec = GridSpec(
        methods=tuple(specs) or ("dense",),
        densities=tuple(densities) or (1.0,),
        archs=("mlp",),
        datasets=("digits",),
        settings={**SMALL, **common},
    )
    return spec.configs()


def test_same_grid_twice_trains_nothing_twice(db_url: str, tmp_path: Path) -> None:
    engine = storage.open_db(db_url)
    configs = grid([("epl", {})], [0.1])
    lines: list[str] = []
    first = run_grid(configs, engine, tmp_path / "runs", show_progress=False, echo=lines.append)
    assert [o.status for o in first] == ["finished", "finished"]
    assert len(lines) == 2 and all(line.startswith("finished mlp/digits") for line in lines)
    lines.clear()
    second = run_grid(configs, engine, tmp_path / "runs", show_progress=False, echo=lines.append)
    assert [o.status for o in second] == ["skipped", "skipped"]
    assert lines == ["skipped 2 of 2 runs already in the database"]
    frame = storage.runs(engine)
    assert len(frame) == 2 and frame["attempts"].tolist() == [1, 1]


def test_failures_become_rows_and_the_grid_goes_on(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = storage.open_db(db_url)
    # density 2e-6 keeps round(0.17) = 0 weights: the allocation fails.
    configs = grid([("epl", {}), ("random", {})], [2e-6, 0.1])
    doomed = next(c for c in configs if c.method == "random" and c.density == 0.1)
    real_fit = pipeline.fit_and_test

    def fit(module, datamodule, *, run_dir: Path, **kwargs):
        if run_dir.name == doomed.config_hash():
            raise RuntimeError("the optimizer diverged")
        return real_fit(module, datamodule, run_dir=run_dir, **kwargs)

    monkeypatch.setattr(pipeline, "fit_and_test", fit)
    outcomes = run_grid(configs, engine, tmp_path / "runs", show_progress=False, echo=print)
    status = {(o.config.method, o.config.density): o.status for o in outcomes}
    assert status == {
        ("dense", 1.0): "finished",
        ("epl", 2e-6): "failed",
        ("epl", 0.1): "finished",
        ("random", 2e-6): "failed",
        ("random", 0.1): "failed",
    }
    failures = storage.failures(engine).sort_values(["method", "density"])
    assert failures[["method", "stage", "exception_type"]].values.tolist() == [
        ["epl", "allocation", "AllocationFailed"],
        ["random", "allocation", "AllocationFailed"],
        ["random", "training", "RuntimeError"],
    ]
    assert failures["reason"].iloc[0].startswith("density 2e-06 keeps round(")
    assert failures["reason"].iloc[2] == "the optimizer diverged"
    assert failures["traceback_digest"].str.len().tolist() == [16, 16, 16]
    runs = storage.runs(engine, storage.RunFilter(statuses=["failed"]))
    assert len(runs) == 3 and runs["reason"].notna().all()
    # Failed runs are results: a relaunch skips them too.
    lines: list[str] = []
    run_grid(configs, engine, tmp_path / "runs", show_progress=False, echo=lines.append)
    assert lines == ["skipped 5 of 5 runs already in the database"]


def _bench_run(db_url: str, runs_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench.cli", "run", "--db", db_url, "--no-progress"]
    return subprocess.Popen(
        [*command, "--runs-dir", str(runs_dir), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkilled_run_resumes_from_its_last_checkpoint(db_url: str, tmp_path: Path) -> None:
    engine = storage.open_db(db_url)
    runs_dir = tmp_path / "runs"
    # One config (``dense`` is the baseline every grid has), so the relaunch trains only it.
    args = ["--methods", "dense", "--epochs", "4", "--train-subset", "300"]
    args += ["--heartbeat-interval", "1", "--grace-period", "2"]
    process = _bench_run(db_url, runs_dir, *args)
    deadline = time.monotonic() + 120
    victim: Run | None = None
    while victim is None:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "no epoch was checkpointed in time"
        time.sleep(0.05)
        with storage.session_scope(engine) as session:
            for run in session.scalars(select(Run).where(Run.status == "running")):
                if run.epoch_metrics and (runs_dir / run.config_hash / "last.ckpt").exists():
                    victim = run
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = storage.schema.utcnow()
    configs = grid([], [], epochs=4, train_subset=300)
    assert [c.config_hash() for c in configs] == [victim.config_hash]
    lines: list[str] = []
    (outcome,) = run_grid(
        configs, engine, runs_dir, settings=FAST, show_progress=False, echo=lines.append
    )
    assert outcome.status == "finished" and lines[0].startswith("finished")
    with storage.session_scope(engine) as session:
        run = session.get(Run, victim.id)
        assert run.status == "finished" and run.resumed and run.attempts == 2
        assert [m.epoch for m in run.epoch_metrics] == list(range(4))
        first = run.epoch_metrics[0]
        assert aware(first.recorded_at) < killed_at, "epoch 0 came from the checkpoint"
        assert run.best_epoch in range(4) and run.test_acc is not None
        assert session.scalar(select(func.count()).select_from(Run)) == 1


def test_stale_running_row_is_taken_over_by_a_relaunch(db_url: str, tmp_path: Path) -> None:
    """A ``running`` row that no live trial holds (its process died) is taken over at once."""
    engine = storage.open_db(db_url)
    (config,) = grid([("epl", {})], [0.1], **{"epochs": 1})[:1]
    dead = subprocess.Popen(["true"])
    dead.wait()
    holder = f"{socket.gethostname()}:{dead.pid}"
    assert Ledger(engine).claim(identity(config), holder) != "busy"
    (outcome,) = run_grid(
        [config], engine, tmp_path / "runs", settings=FAST, show_progress=False, echo=print
    )
    assert outcome.status == "finished"
    frame = storage.runs(engine)
    assert frame["attempts"].tolist() == [2] and not frame["resumed"].item()


def test_interrupted_run_is_handed_back(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or a missing data set) is not a result: the row goes back to pending."""
    engine = storage.open_db(db_url)
    (config,) = grid([("epl", {})], [0.1])[:1]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "fit_and_test", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_grid([config], engine, tmp_path / "runs", show_progress=False, echo=print)
    frame = storage.runs(engine)
    assert frame["status"].tolist() == ["pending"]
    with storage.session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Failure)) == 0
        assert session.scalar(select(func.count()).select_from(EpochMetric)) == 0


# Spectrum -------------------------------------------------------------------------------------


def test_spectrum_is_zero_exactly_when_a_layer_is_cut() -> None:
    pool = torch.randn(100, 1, 8, 8)
    x = spectrum_batch(pool, seed=3)
    assert torch.equal(x, spectrum_batch(pool, seed=3)) and x.shape == (8, 1, 8, 8)
    assert not torch.equal(x, spectrum_batch(pool, seed=4))
    model = architectures.build("mlp", 10, input_shape=(1, 8, 8), seed=0)
    dense = jacobian_spectrum(model, x)
    assert dense.shape == (10,) and (dense > 0).all()
    assert torch.all(dense[:-1] >= dense[1:]), "largest first"
    # The same numbers from autograd's full Jacobian, one example at a time.
    expected = torch.stack(
        [
            torch.linalg.svdvals(
                torch.autograd.functional.jacobian(lambda v: model(v[None])[0], example)
                .flatten(1)
                .double()
            )
            for example in x
        ]
    ).mean(0)
    torch.testing.assert_close(dense, expected, rtol=1e-5, atol=1e-7)
    masks = {
        name: torch.ones_like(p, dtype=torch.bool)
        for name, p in model.named_parameters()
        if name.endswith("weight")
    }
    masks["3.weight"][:] = False  # the hidden-to-hidden layer: every path is cut
    methods.Allocation("cut", 0.5, masks).apply(model)
    assert torch.equal(jacobian_spectrum(model, x), torch.zeros(10, dtype=torch.float64))


def test_grid_with_spectrum_stores_figure_4(db_url: str, tmp_path: Path) -> None:
    """EPL at 2e-5 keeps [1, 1, 0] weights per layer: its spectrum collapses to exactly zero,
    while the dense baseline and DCTpS (always dense in effect) keep theirs."""
    engine = storage.open_db(db_url)
    configs = grid([("epl", {}), ("dctps", {})], [2e-5], spectrum=True)
    assert all(c.spectrum for c in configs)
    assert configs[0].config_hash() == grid([], [], spectrum=False)[0].config_hash()
    run_grid(configs, engine, tmp_path / "runs", show_progress=False, echo=print)
    spectra = storage.spectra(engine)
    by_method = {m: frame["value"].to_numpy() for m, frame in spectra.groupby("method")}
    assert set(by_method) == {"dense", "epl", "dctps"}
    assert all(len(values) == 10 for values in by_method.values())
    assert (by_method["epl"] == 0).all()
    assert (by_method["dense"] > 0).all() and (by_method["dctps"] > 0).all()
    layers = storage.layer_allocation(engine, storage.RunFilter(methods=["epl"]))
    assert layers["kept"].tolist() == [1, 1, 0]
    assert os.path.exists(tmp_path / "runs" / configs[1].config_hash() / "last.ckpt")
