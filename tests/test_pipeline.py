"""The one-run pipeline on its own: no database, a recorder that keeps what it is told."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.grid import GridSpec

CODE = """
import sys
from pathlib import Path
from bench.grid import GridSpec
from bench.pipeline import run_one
from bench.recorder import MemoryRecorder

(config,) = GridSpec(methods=("epl",), densities=(0.1,), baseline=False,
                     settings={"epochs": 1, "train_subset": 100}).configs()
recorder = MemoryRecorder()
outcome = run_one(config, recorder, Path(sys.argv[1]))
print(outcome.status, len(recorder.provenance), recorder.allocations[0].kept,
      len(recorder.epochs), len(recorder.results), len(recorder.failures),
      "sqlalchemy" in sys.modules)
"""


def test_a_run_reports_through_a_recorder_without_any_database(tmp_path: Path) -> None:
    (config,) = GridSpec(
        methods=("epl",), densities=(0.1,), baseline=False,
        settings={"epochs": 1, "train_subset": 100},
    ).configs()
    done = subprocess.run(
        [sys.executable, "-c", CODE, str(tmp_path)], capture_output=True, text=True, check=True
    )
    status, provenance, kept, epochs, results, failures, database = done.stdout.split()
    assert (status, provenance, epochs, results, failures) == ("finished", "1", "1", "1", "0")
    assert int(kept) == round(0.1 * 84480)
    assert database == "False", "the pipeline imported SQLAlchemy"
    assert (tmp_path / config.config_hash() / "last.ckpt").exists()
