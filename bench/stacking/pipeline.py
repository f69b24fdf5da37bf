"""A stack of runs, end to end: prepare each (allocation stays one run at a time), train them
together, report each as its own run.

Each config keeps its own recorder, so its rows are exactly an unstacked run's, plus
``runs.stack``. A run that cannot be stacked (Hyperplane Projection, a plugin network of
another structure) or a stack of one trains alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import architectures
from bench.config import RunConfig, stream_seed
from bench.errors import BenchError
from bench.pipeline import (
    DEFAULT_RUNS_DIR,
    Prepared,
    RunOutcome,
    StageError,
    epoch_row,
    fail,
    finish,
    prepare,
    train_alone,
)
from bench.recorder import Recorder
from bench.stacking.canonical import Unstackable, canonical
from bench.stacking.train import Member, checkpoint_epoch, fit_stack
from storage.rows import LostClaim


def stack_name(configs: Sequence[RunConfig]) -> str:
    """``stack-<digest>/<size>``: the same for every run of one stack."""
    text = ",".join(sorted(c.config_hash() for c in configs))
    return f"stack-{hashlib.sha256(text.encode()).hexdigest()[:12]}/{len(configs)}"


def _canonical(prepared: Prepared, with_offset: bool):
    config, module = prepared.config, prepared.datamodule
    plain = architectures.build(
        config.arch,
        module.num_classes,
        input_shape=module.input_shape,
        seed=stream_seed(config.seed, "init"),
    )
    return canonical(prepared.model, plain, with_offset).to(prepared.device)


def _stacked_before(prepared: Prepared, runs_dir: Path) -> bool:
    """Whether the run has a stack checkpoint: then it resumes from it, even in a stack of one."""
    return checkpoint_epoch(runs_dir / prepared.config.config_hash()) >= 0


def run_stack(
    runs: Sequence[tuple[RunConfig, Recorder]],
    runs_dir: Path = DEFAULT_RUNS_DIR,
    progress: bool = False,
    device_index: int | None = None,
) -> list[RunOutcome]:
    """Prepare every run, train the stackable ones as one stack, report each on its own."""
    outcomes: dict[int, RunOutcome] = {}
    ready: list[tuple[int, Prepared, Recorder]] = []
    for i, (config, recorder) in enumerate(runs):
        try:
            ready.append((i, prepare(config, recorder, device_index), recorder))
        except StageError as failure:
            outcomes[i] = fail(config, recorder, failure.stage, failure.error)
    if len(ready) == 1 and not _stacked_before(ready[0][1], runs_dir):
        i, prepared, recorder = ready[0]  # a stack of one is a run alone
        outcomes[i] = train_alone(prepared, recorder, runs_dir, progress)
        return [outcomes[i] for i in range(len(runs))]
    with_offset = any(p.config.method == "dctps" for _, p, _ in ready)
    members: list[tuple[int, Prepared, Recorder, Member]] = []
    for i, prepared, recorder in ready:
        try:
            network = _canonical(prepared, with_offset)
        except Unstackable:
            outcomes[i] = train_alone(prepared, recorder, runs_dir, progress)
            continue
        member = Member(
            prepared.model,
            network,
            prepared.datamodule,
            runs_dir / prepared.config.config_hash(),
            on_epoch=lambda record, r=recorder: r.epoch(epoch_row(record)),
        )
        members.append((i, prepared, recorder, member))
    if len(members) == 1 and not _stacked_before(members[0][1], runs_dir):
        i, prepared, recorder, _ = members[0]
        outcomes[i] = train_alone(prepared, recorder, runs_dir, progress)
    elif members:
        outcomes.update(_train_stack(members, progress))
    return [outcomes[i] for i in range(len(runs))]


def _train_stack(
    members: list[tuple[int, Prepared, Recorder, Member]], progress: bool
) -> dict[int, RunOutcome]:
    first = members[0][1]
    device, plan = first.device, first.plan
    on_gpu = device.type == "cuda"
    name = stack_name([p.config for _, p, _, _ in members])
    try:
        results = fit_stack(
            [m for *_, m in members],
            plan.preset,
            epochs=plan.epochs,
            lr=plan.lr,
            accelerator="gpu" if on_gpu else "cpu",
            devices=[device.index or 0] if on_gpu else None,
            precision=first.config.precision,
            progress=progress,
        )
    except (LostClaim, BenchError, FileNotFoundError):
        raise
    except Exception as error:
        return {
            i: fail(prepared.config, recorder, "training", error)
            for i, prepared, recorder, _ in members
        }
    outcomes: dict[int, RunOutcome] = {}
    for (i, prepared, recorder, _), result in zip(members, results):
        if result.result is None:
            outcomes[i] = fail(
                prepared.config, recorder, "training", FloatingPointError(result.failed)
            )
        else:
            outcomes[i] = finish(prepared, result.result, recorder, stack=name)
    return outcomes
