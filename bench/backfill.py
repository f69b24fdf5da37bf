"""``bench db backfill-steps``: the optimizer steps of epoch rows recorded before they were
stored, computed from each run's config exactly as training counts them."""

from __future__ import annotations

import math
from typing import Any

from bench.config import RunConfig


def steps_per_epoch(config: RunConfig, sizes: dict[tuple, int], provenance: bool = True) -> int:
    """Batches per training epoch of ``config``: its training examples (after the run's 10%
    validation hold-out) over its batch size, the last batch partial (``drop_last=False``).

    Runs recorded without provenance predate paibench 0.1.0, whose ``--train-subset N`` trained
    on all N images (the hold-out came from the rest of the split): their count is N.
    """
    import methods
    from bench.data import make_datamodule
    from bench.resolve import training_plan

    plan = training_plan(config, methods.get(config.method, **config.options))
    if not provenance and config.train_subset is not None:
        return math.ceil(config.train_subset / plan.batch_size)
    key = (config.dataset, config.train_subset, config.data_dir)
    if key not in sizes:
        module = make_datamodule(
            config.dataset,
            batch_size=plan.batch_size,
            seed=config.seed,
            train_subset=config.train_subset,
            data_dir=config.data_dir,
        )
        module.setup()
        sizes[key] = len(module.y_train)  # the same count for every seed
    return math.ceil(sizes[key] / plan.batch_size)


def backfill_steps(engine: Any) -> int:
    """Fill every unknown ``epoch_metrics.steps``; returns the rows filled."""
    from storage.backfill import fill_steps, runs_without_steps

    sizes: dict[tuple, int] = {}
    per_epoch = {
        run_id: steps_per_epoch(RunConfig.from_json(config), sizes, recorded)
        for run_id, (config, recorded) in runs_without_steps(engine).items()
    }
    return fill_steps(engine, per_epoch)
