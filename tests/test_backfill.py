"""``bench db backfill-steps`` computes the optimizer steps training records, and the older
``--train-subset`` rule for runs recorded without provenance."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

import storage
from bench.cli import main
from storage.schema import EpochMetric


def test_backfilled_steps_equal_the_recorded_ones(tmp_path: Path, db_url: str) -> None:
    grid = ["run", "--methods", "epl", "--densities", "0.1", "--epochs", "2", "--no-progress"]
    grid += ["--train-subset", "300", "--db", db_url, "--runs-dir", str(tmp_path / "runs")]
    assert main(grid) == 0
    engine = storage.open_db(db_url)
    recorded = storage.epoch_metrics(engine).sort_values(["run_id", "epoch"])
    # 300 images: 30 validate, 270 train in 3 batches of 128 (the last partial).
    assert recorded["steps"].tolist() == [3, 6, 3, 6]
    with storage.session_scope(engine) as session:
        session.execute(update(EpochMetric).values(steps=None))
    assert main(["db", "backfill-steps", "--db", db_url]) == 0
    filled = storage.epoch_metrics(engine).sort_values(["run_id", "epoch"])
    assert filled["steps"].tolist() == recorded["steps"].tolist()
    # Runs recorded before provenance trained on all N subset images (the hold-out came from
    # the rest of the split): at batch 100 the two rules differ from N = 410 on.
    from bench.backfill import steps_per_epoch
    from bench.config import RunConfig

    config = RunConfig("mlp", "digits", "epl", 0.1, train_subset=300, batch_size=100)
    assert steps_per_epoch(config, {}, provenance=True) == 3
    assert steps_per_epoch(config, {}, provenance=False) == 3
    config = RunConfig("mlp", "digits", "epl", 0.1, train_subset=400, batch_size=100)
    assert steps_per_epoch(config, {}, provenance=True) == 4  # 360 train
    assert steps_per_epoch(config, {}, provenance=False) == 4  # 400 train
    config = RunConfig("mlp", "digits", "epl", 0.1, train_subset=410, batch_size=100)
    assert steps_per_epoch(config, {}, provenance=True) == 4  # 369 train
    assert steps_per_epoch(config, {}, provenance=False) == 5  # 410 train
