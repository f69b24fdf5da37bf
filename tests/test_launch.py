"""``bench launch``: Submitit jobs of ``bench worker`` on one grid.

The local executor end to end on SQLite (two workers, one SIGKILLed mid-run: its run is taken
over and resumed, every config recorded once); the SLURM executor up to sbatch, with fake
``srun``/``sbatch`` commands that keep the batch script, so the parameters each flag maps to
are checked where SLURM reads them, without a cluster.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_workers import CONFIGS, GRID, _assert_every_config_once, _kill_a_worker_mid_run

import storage
from bench.cli import build_parser, main
from bench.config import RunConfig
from bench.grid import GridSpec
from bench.launch import worker_argv
from bench.options import values
from bench.settings import QueueSettings, RunPlace
from bench.submitting import WorkerTask

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--heartbeat-interval", "1", "--grace-period", "3"]


def test_launched_workers_survive_a_sigkill(db_url: str, tmp_path: Path) -> None:
    runs_dir, logs = tmp_path / "runs", tmp_path / "logs"
    args = [*GRID, "--db", db_url, "--runs-dir", str(runs_dir), *QUICK]
    args += ["--executor", "local", "--jobs", "2", "--log-dir", str(logs), "--wait"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out, err = tmp_path / "launch.out", tmp_path / "launch.err"
    launch = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "launch", *args],
        stdout=out.open("w"),
        stderr=err.open("w"),
        cwd=ROOT,
        env=env,
    )
    engine = storage.open_db(db_url)
    victim, _ = _kill_a_worker_mid_run(engine, runs_dir, [launch])
    assert launch.wait(240) == 0, out.read_text() + err.read_text()
    text = out.read_text()
    assert "submitted 2 local jobs: 2 bench workers" in text
    jobs = re.findall(r"^  job (\d+): 1 worker\(s\), logs (\S+_0_log\.out)", text, re.M)
    assert len(jobs) == 2 and all(Path(log).parent == logs for _, log in jobs), text
    assert text.count("finished mlp/digits") == CONFIGS, text
    assert "Test accuracy (%) of mlp on digits" in text
    lost = re.findall(
        r"job (\d+) task 0: bench worker ended \(killed by SIGKILL\)", err.read_text()
    )
    assert len(lost) == 1 and lost[0] in dict(jobs), err.read_text()
    (survivor,) = [log for job, log in jobs if job != lost[0]]
    assert "worker done" in Path(survivor).read_text()
    _assert_every_config_once(engine, victim, stacked=True)  # bench worker's default: auto
    engine.dispose()


def _fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``srun`` and ``sbatch`` on PATH; sbatch keeps each script in ``scripts/``."""
    bin_dir, scripts = tmp_path / "bin", tmp_path / "scripts"
    bin_dir.mkdir()
    scripts.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\nn=$(ls {scripts} | wc -l)\ncp "$1" {scripts}/$n.sh\n'
        'echo "Submitted batch job $((4242 + n))"\n'
    )
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return scripts


SLURM = ["--executor", "slurm", "--slurm-partition", "gpu", "--slurm-account", "proj"]
SLURM += ["--nodes", "2", "--gpus-per-node", "4", "--timeout-min", "90"]
SLURM += ["--slurm-option", "cpus_per_task=8", "--slurm-option", "mem=64G"]
SLURM += ["--slurm-option", "setup=module load cuda", "--slurm-option", "reservation=big"]


def test_slurm_jobs_get_the_parameters_the_flags_map_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    scripts = _fake_slurm(tmp_path, monkeypatch)
    db_url = "sqlite:///" + str(tmp_path / "bench.db")
    logs = tmp_path / "logs"
    grid = ["--methods", "random", "--densities", "0.1", "--accelerator", "gpu"]
    # No GPU here (a login node): the jobs look for theirs where they run.
    code = main(["launch", *grid, *SLURM, "--db", db_url, "--log-dir", str(logs)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "SQLite on a shared file system is not safe" in err
    assert "submitted 1 slurm job: 8 bench workers (2 nodes x 4 GPUs each)" in out
    assert f"job 4242: 8 worker(s), logs {logs}/4242_0_log.out .. 4242_7_log.out" in out
    (script,) = scripts.iterdir()
    sbatch = script.read_text()
    for line in (
        "--partition=gpu",
        "--account=proj",
        "--nodes=2",
        "--gpus-per-node=4",
        "--ntasks-per-node=4",
        "--time=90",
        "--cpus-per-task=8",
        "--mem=64G",
        "--reservation=big",
        "--job-name=paibench-worker",
    ):
        assert f"#SBATCH {line}\n" in sbatch, sbatch
    assert "\nmodule load cuda\n" in sbatch
    assert "--array" not in sbatch

    import submitit

    delayed = submitit.core.utils.DelayedSubmission.load(logs / "4242_submitted.pkl")
    task = delayed.function
    assert isinstance(task, WorkerTask) and task.gpus == 4
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_LOCALID", "3")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert task.command()[-2:] == ["--device", "cuda:3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # a cluster that binds one GPU per task
    assert task.command()[-2:] == ["--device", "cuda:0"]
    assert task.command()[:6] == [sys.executable, "-m", "bench.cli", "worker", "--db", db_url]


def test_more_jobs_go_as_one_job_array(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    scripts = _fake_slurm(tmp_path, monkeypatch)
    logs = tmp_path / "logs"
    db_url = f"sqlite:///{tmp_path / 'bench.db'}"
    args = ["--methods", "random", "--densities", "0.1", "--db", db_url, "--log-dir", str(logs)]
    args += ["--executor", "slurm", "--accelerator", "gpu", "--gpus-per-node", "2"]
    assert main(["launch", *args, "--jobs", "6"]) == 0
    out = capsys.readouterr().out
    assert "submitted 3 slurm jobs: 6 bench workers (1 node x 2 GPUs each)" in out
    assert [f"job 4242_{i}" in out for i in range(3)] == [True] * 3
    (script,) = scripts.iterdir()
    assert "#SBATCH --array=0-2%3\n" in script.read_text()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--jobs", "3", "--gpus-per-node", "2", "--accelerator", "gpu", "--executor", "local"],
            "--jobs 3 is not a multiple of the 2 workers of one job",
        ),
        (["--executor", "local", "--nodes", "2"], "--nodes must be 1"),
        (
            ["--executor", "local", "--slurm-partition", "gpu"],
            "--slurm-partition: only with --executor slurm",
        ),
        (["--slurm-option", "nodes=2"], "--slurm-option nodes: set it with --nodes"),
        (["--slurm-option", "mem"], "bad --slurm-option 'mem'"),
    ],
)
def test_bad_launches_are_one_line_errors(
    flags: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    _fake_slurm(tmp_path, monkeypatch)
    db = tmp_path / "bench.db"
    assert main(["launch", "--methods", "random", "--db", f"sqlite:///{db}", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not db.exists(), "nothing is created before the launch is known to be good"


def test_slurm_without_srun_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["launch", "--methods", "random", "--db", f"sqlite:///{tmp_path}/b.db"]) == 2
    assert "on one machine use --executor local" in capsys.readouterr().err


def test_the_workers_get_the_grid_the_launch_was_given(tmp_path: Path) -> None:
    """Flags generated back from the parsed launch parse, as ``bench worker``, to the same grid."""
    parser = build_parser()
    grid = ["--methods", "snip", "random:seed_offset=1", "--densities", "0.1,0.01"]
    grid += ["--seeds", "0", "1", "--arch", "mlp", "--epochs", "3", "--precision", "bf16-mixed"]
    grid += ["--channels-last", "--plugin", "extra.py", "--plugin", "more.py", "--max-retry", "5"]
    grid += ["--optuna-study", "s1", "--db", "sqlite:///rel.db", "--runs-dir", "runs"]
    launch = parser.parse_args(["launch", *grid, "--executor", "local", "--wait"])
    place = RunPlace(**values(launch, RunPlace))
    argv = worker_argv(launch, launch.db, place)
    worker = parser.parse_args(["worker", *argv])
    for cls in (GridSpec, RunConfig, QueueSettings):
        assert values(worker, cls) == values(launch, cls)
    assert worker.optuna_study == "s1"
    assert worker.db == "sqlite:///" + os.path.abspath("rel.db")
    assert worker.runs_dir == os.path.abspath("runs")
    assert worker.plugin == [os.path.abspath("extra.py"), os.path.abspath("more.py")]
    assert "--wait" not in argv and "--executor" not in argv


def test_a_task_is_requeued_as_it_was() -> None:
    """Out of time or preempted, Submitit resubmits the same worker (its runs resume)."""
    task = WorkerTask(["--db", "sqlite:///x.db"], gpus=0)
    again = task.checkpoint()
    assert again.function is task and again.args == ()


def test_a_stopped_task_stops_its_worker_with_sigint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submitit stops a task being requeued with SystemExit (here: KeyboardInterrupt, as a
    cancel does); the task sends its worker SIGINT, on which bench worker hands its run back."""
    import threading

    mark = tmp_path / "interrupted"
    child = (
        "import signal, sys, time\n"
        f"def stop(*_): open({str(mark)!r}, 'w').close(); sys.exit(130)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        f"open({str(tmp_path / 'started')!r}, 'w').close()\n"
        "time.sleep(60)\n"
    )
    task = WorkerTask([], gpus=0)
    monkeypatch.setattr(task, "command", lambda: [sys.executable, "-c", child])

    main_thread = threading.get_ident()

    def interrupt_when_started() -> None:
        while not (tmp_path / "started").exists():
            time.sleep(0.05)
        signal.pthread_kill(main_thread, signal.SIGINT)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        task()
    assert mark.exists() and time.monotonic() - start < 30
