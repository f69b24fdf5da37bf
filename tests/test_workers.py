"""Workers on one grid, one of them SIGKILLed mid-run: at the end exactly one finished row
per config, no duplicates, nothing lost, and the killed run resumed from its checkpoint.
``bench run --workers 2`` on SQLite and three ``bench worker`` processes on PostgreSQL, both
scheduling through Optuna's trials (the claims underneath are the same code;
tests/test_storage.py races them on both databases). A worker whose parent is SIGKILLed exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PG_SKIP_REASON, postgres_url, temporary_postgres_database
from sqlalchemy import func, select

import storage
from bench.grid import GridSpec
from bench.scheduling.queue import HASH_ATTR, study_name_for
from storage.schema import EpochMetric, Failure, Run

EPOCHS = 2
GRID = ["--methods", "epl", "random", "--densities", "0.1", "--epochs", str(EPOCHS)]
GRID += ["--train-subset", "200"]
CONFIGS = 3  # dense + 2 methods


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = postgres_url()
    if base is None:
        pytest.skip(PG_SKIP_REASON)
    with temporary_postgres_database(base) as url:
        yield url


def _bench(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _kill_a_worker_mid_run(
    engine, runs_dir: Path, processes: list[subprocess.Popen], timeout: float = 150
) -> tuple[int, int]:
    """SIGKILL the worker of a run that has checkpointed an epoch but not finished.

    Returns (run id, killed pid); asserts the run was still unfinished after the kill.
    """
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "no run reached a checkpoint in time"
        assert any(p.poll() is None for p in processes), "every worker exited early"
        with storage.session_scope(engine) as session:
            candidates = [
                (run.id, int(run.worker.rsplit(":", 1)[1]), run.config_hash)
                for run in session.scalars(select(Run).where(Run.status == "running"))
                if run.epoch_metrics and run.worker
            ]
        for run_id, pid, config_hash in candidates:
            run_dir = runs_dir / config_hash  # last.ckpt alone, stack.pt in a stack
            if (run_dir / "last.ckpt").exists() or (run_dir / "stack.pt").exists():
                os.kill(pid, signal.SIGKILL)
                with storage.session_scope(engine) as session:
                    run = session.get(Run, run_id)
                    assert run.status == "running" and run.worker.endswith(f":{pid}"), (
                        "the run finished before the kill landed"
                    )
                return run_id, pid
        time.sleep(0.05)


def _assert_every_config_once(engine, victim: int, stacked: bool = False) -> None:
    frame = storage.runs(engine)
    assert len(frame) == CONFIGS, frame
    assert frame["config_hash"].is_unique
    assert frame["status"].tolist() == ["finished"] * CONFIGS, frame[["method", "status"]]
    # Killing a worker kills every run it held: one run alone, its whole stack when stacked.
    attempts = dict(zip(frame["id"], frame["attempts"]))
    killed = {run for run, count in attempts.items() if count == 2}
    assert victim in killed and set(attempts.values()) <= {1, 2}, attempts
    if not stacked:
        assert killed == {victim}, "only the killed run was taken over"
    # The victim had checkpointed (that is how it was picked); a run its worker had claimed
    # but not yet trained has nothing to resume.
    assert frame.set_index("id").loc[victim, "resumed"], "resumed from the killed run's ckpt"
    with storage.session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Failure)) == 0
        per_run = session.execute(
            select(EpochMetric.run_id, func.count()).group_by(EpochMetric.run_id)
        ).all()
    assert sorted(n for _, n in per_run) == [EPOCHS] * CONFIGS


@pytest.mark.parametrize("stack", ["off", "3"])
def test_local_workers_survive_a_sigkill(db_url: str, tmp_path: Path, stack: str) -> None:
    runs_dir = tmp_path / "runs"
    args = [*GRID, "--db", db_url, "--runs-dir", str(runs_dir), "--no-progress"]
    args += ["--stack", stack]
    args += ["--heartbeat-interval", "1", "--grace-period", "3"]
    parent = _bench("run", *args, "--workers", "2", log=tmp_path / "run.log")
    engine = storage.open_db(db_url)
    victim, _ = _kill_a_worker_mid_run(engine, runs_dir, [parent])
    assert parent.wait(240) == 0, (tmp_path / "run.log").read_text()
    log = (tmp_path / "run.log").read_text()
    assert log.count("finished mlp/digits") == CONFIGS, log
    assert "Test accuracy (%) of mlp on digits" in log
    _assert_every_config_once(engine, victim, stacked=stack != "off")
    engine.dispose()


def test_optuna_workers_survive_a_sigkill(pg_url: str, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    args = [*GRID, "--db", pg_url, "--runs-dir", str(runs_dir), "--stack", "off"]
    args += ["--heartbeat-interval", "1", "--grace-period", "3"]
    workers = [_bench("worker", *args, log=tmp_path / f"worker{i}.log") for i in range(3)]
    engine = storage.open_db(pg_url)
    victim, pid = _kill_a_worker_mid_run(engine, runs_dir, workers)
    for worker in workers:
        code = worker.wait(240)
        assert code == (-signal.SIGKILL if worker.pid == pid else 0), code
    _assert_every_config_once(engine, victim)

    import optuna
    from optuna.trial import TrialState

    configs = GridSpec(
        methods=("epl", "random"),
        densities=(0.1,),
        archs=("mlp",),
        settings={"epochs": EPOCHS, "train_subset": 200},
    ).configs()
    study = optuna.load_study(
        study_name=study_name_for(configs), storage=storage.engine_url(engine)
    )
    trials = study.get_trials(deepcopy=False)
    complete = [t.user_attrs[HASH_ATTR] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(c.config_hash() for c in configs)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1, "the dead worker's trial, failed by its heartbeat"
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert [t.state for t in retried] == [TrialState.COMPLETE], "and retried once, to the end"
    engine.dispose()


def test_a_run_whose_workers_keep_dying_is_recorded_failed(db_url: str) -> None:
    """After max_retry hand-overs the run is a ``failed`` row (stage ``worker``), not a hang."""
    import optuna

    from bench.scheduling.queue import ATTEMPT_ATTR, RetryOrFail, identity
    from storage.ledger import Ledger

    ledger = Ledger(storage.open_db(db_url))
    (config,) = GridSpec(methods=("dense",), densities=(1.0,), archs=("mlp",)).configs()
    held = ledger.claim(identity(config), "trial-0@host:1")
    dead = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        user_attrs={HASH_ATTR: config.config_hash(), ATTEMPT_ATTR: held.attempt},
        system_attrs={"failed_trial": 0, "retry_history": [0, 1]},
    )
    RetryOrFail(ledger, max_retry=2)(None, dead)  # the third death: no retry left
    frame = storage.runs(ledger.engine)
    assert frame["status"].tolist() == ["failed"]
    assert frame["reason"].item() == "its worker died 3 times (Optuna heartbeat lost)"
    assert storage.failures(ledger.engine)[["stage", "exception_type"]].values.tolist() == [
        ["worker", "WorkerLost"]
    ]


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state in ("Z", "X")


def test_a_worker_orphaned_by_a_sigkill_of_its_parent_exits(db_url: str, tmp_path: Path) -> None:
    """``bench run --workers 2`` SIGKILLed: its workers stop within the grace period instead of
    training on (the relaunch would otherwise race them)."""
    runs_dir = tmp_path / "runs"
    args = [*GRID, "--epochs", "50", "--db", db_url, "--runs-dir", str(runs_dir)]
    args += ["--no-progress", "--heartbeat-interval", "1", "--grace-period", "3", "--stack", "off"]
    parent = _bench("run", *args, "--workers", "2", log=tmp_path / "run.log")
    engine = storage.open_db(db_url)
    deadline = time.monotonic() + 150
    pids: set[int] = set()
    while len(pids) < 2:
        assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
        assert parent.poll() is None, (tmp_path / "run.log").read_text()
        with storage.session_scope(engine) as session:
            workers = session.scalars(select(Run.worker).where(Run.status == "running")).all()
        pids = {int(w.rsplit(":", 1)[1]) for w in workers if w}
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 3  # the grace period
    while not all(_pid_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers {pids} still alive after their parent died"
        time.sleep(0.05)
    with storage.session_scope(engine) as session:
        statuses = session.scalars(select(Run.status)).all()
    assert "running" in statuses, "the orphans stopped mid-run: their runs are for a relaunch"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_run_held_by_another_grids_dead_trial_is_taken_over(tmp_path: Path) -> None:
    """A launch of one part of a study after a crash of a launch of other parts: the dead
    holder's trial belongs to the other grid's Optuna study, which only a sweep of every study
    fails; the new grid then takes the run over instead of waiting for ever."""
    from bench.scheduling.queue import identity, open_study
    from bench.settings import QueueSettings
    from storage.ledger import Ledger

    url = f"sqlite:///{tmp_path / 'db.db'}"
    ledger = Ledger(storage.open_db(url))
    other = open_study(ledger, QueueSettings(heartbeat_interval=1, grace_period=1), "other-grid")
    trial = other.ask()  # the other grid's trial, RUNNING, whose worker then dies
    other._storage.record_heartbeat(trial._trial_id)
    grid = GridSpec(methods=("epl",), densities=(0.1,), archs=("mlp",))
    grid = grid.with_settings(epochs=1, train_subset=200)
    dense = next(c for c in grid.configs() if c.method == "dense")
    ledger.claim(identity(dense), f"trial-{trial._trial_id}@elsewhere:1")
    time.sleep(2)  # past the grace period
    args = ["run", "--methods", "epl", "--densities", "0.1", "--archs", "mlp", "--epochs", "1"]
    args += ["--train-subset", "200", "--db", url, "--runs-dir", str(tmp_path / "runs")]
    args += ["--no-progress", "--heartbeat-interval", "1", "--grace-period", "1", "--threads", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    frame = storage.runs(ledger.engine).set_index("method")
    assert frame["status"].to_dict() == {"dense": "finished", "epl": "finished"}
    assert frame.loc["dense", "attempts"] == 2  # the dead holder's attempt, then the takeover
