"""Run orchestration: resolve a config, allocate, apply, train, and record everything in the DB."""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import Engine, select
from torch import nn

import architectures
import methods
from bench.config import RunConfig, stream_seed
from bench.data import dataset_spec, make_datamodule
from bench.errors import BenchError
from bench.presets import get_preset
from bench.training import PaIModule, TrainResult, fit_and_test
from storage import session_scope
from storage.schema import AllocationCostRow, EpochMetric, Failure, LayerAllocation, Run, utcnow

DEFAULT_RUNS_DIR = Path("runs")
BASELINE_METHOD = "dense"


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one config: trained, failed, or skipped because the DB already had it."""

    config: RunConfig
    status: str
    test_acc: float | None = None
    reason: str | None = None
    skipped: bool = False


def canonical_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Typed options of ``method`` minus those equal to their default (keeps hashes stable)."""
    instance = methods.get(method, **options)
    defaults = {info.name: info.default for info in methods.options_of(type(instance))}
    resolved = instance.options()
    return {k: resolved[k] for k in sorted(options) if resolved.get(k) != defaults.get(k)}


def validate(config: RunConfig) -> RunConfig:
    """Check every name and value of ``config``; raise BenchError naming the bad one."""
    spec = dataset_spec(config.dataset)
    try:
        architectures.spec(config.arch)
        options = canonical_options(config.method, config.options)
        methods.check_density(config.density)
    except (methods.UnknownMethod, architectures.UnknownArchitecture, ValueError) as error:
        raise BenchError(str(error)) from None
    module = spec.module
    arch = architectures.spec(config.arch)
    if not arch.accepts(module.input_shape):
        raise BenchError(
            f"architecture {config.arch!r} does not accept {config.dataset!r} inputs "
            f"{module.input_shape} (it accepts {arch.accepts_text})"
        )
    get_preset(config.preset, config.arch)
    # The budget is resolved now so that the stored config (and its hash) says what really ran.
    return replace(config, options=options, epochs=effective_epochs(config))


def effective_epochs(config: RunConfig) -> int:
    """--epochs if given, else the data set's CPU default, else the preset's (paper) epochs."""
    if config.epochs is not None:
        return config.epochs
    default = dataset_spec(config.dataset).default_epochs
    return default if default is not None else get_preset(config.preset, config.arch).epochs


def expand_grid(
    *,
    archs: Sequence[str],
    datasets: Sequence[str],
    method_specs: Sequence[tuple[str, dict[str, Any]]],
    densities: Sequence[float],
    seeds: Sequence[int],
    baseline: bool = True,
    **common: Any,
) -> list[RunConfig]:
    """The product of the lists as validated configs, a dense baseline per arch x dataset x seed."""
    configs: list[RunConfig] = []
    for arch, dataset, seed in itertools.product(archs, datasets, seeds):
        if baseline:
            configs.append(RunConfig(arch, dataset, BASELINE_METHOD, 1.0, seed, **common))
        for (method, options), density in itertools.product(method_specs, densities):
            if method == BASELINE_METHOD:
                continue
            configs.append(RunConfig(arch, dataset, method, density, seed, dict(options), **common))
    unique: dict[str, RunConfig] = {}
    for config in configs:
        config = validate(config)
        unique.setdefault(config.config_hash(), config)
    return list(unique.values())


def _traceback_digest(error: BaseException) -> str:
    frames = traceback.format_exception(type(error), error, error.__traceback__)
    return hashlib.sha256("".join(frames).encode()).hexdigest()[:16]


def _alphas(model: nn.Module) -> dict[str, float]:
    """DCTpS layers' alpha by prunable-weight name (``<module>.weight``)."""
    return {
        f"{name}.weight": float(module.alpha.detach())
        for name, module in model.named_modules()
        if isinstance(getattr(module, "alpha", None), torch.Tensor) and module.alpha.numel() == 1
    }


def _claim(engine: Engine, config: RunConfig, config_hash: str) -> int | None:
    """Create (or take over an unfinished) row for the config; None if it is already done."""
    with session_scope(engine) as session:
        run = session.scalars(select(Run).where(Run.config_hash == config_hash)).first()
        if run is not None and run.status in ("finished", "failed"):
            return None
        if run is None:
            run = Run(
                config_hash=config_hash,
                config=config.to_json(),
                method=config.method,
                options=config.options,
                arch=config.arch,
                dataset=config.dataset,
                seed=config.seed,
                density=config.density,
            )
            session.add(run)
        run.status = "running"
        run.started_at = utcnow()
        run.worker = f"{socket.gethostname()}:{os.getpid()}"
        session.flush()
        return run.id


def _record_failure(engine: Engine, run_id: int, stage: str, error: BaseException) -> str:
    reason = getattr(error, "reason", None) or str(error) or type(error).__name__
    with session_scope(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.status, run.reason, run.finished_at = "failed", reason, utcnow()
        session.add(
            Failure(
                run_id=run_id,
                stage=stage,
                reason=reason,
                exception_type=type(error).__name__,
                traceback_digest=_traceback_digest(error),
            )
        )
    return reason


def run_config(
    config: RunConfig, engine: Engine, runs_dir: Path = DEFAULT_RUNS_DIR, progress: bool = False
) -> RunOutcome:
    """Train one config end to end unless the DB already holds it; failures become rows."""
    config_hash = config.config_hash()
    run_id = _claim(engine, config, config_hash)
    if run_id is None:
        return RunOutcome(config, "skipped", skipped=True)
    stage = "setup"
    try:
        preset = get_preset(config.preset, config.arch)
        epochs = effective_epochs(config)
        datamodule = make_datamodule(
            config.dataset,
            batch_size=config.batch_size or preset.batch_size,
            seed=config.seed,
            train_subset=config.train_subset,
            data_dir=config.data_dir,
            download=config.download,
        )
        datamodule.setup()
        model = architectures.build(
            config.arch,
            datamodule.num_classes,
            input_shape=datamodule.input_shape,
            seed=stream_seed(config.seed, "init"),
        )
        stage = "allocation"
        method = methods.get(config.method, **config.options)
        context = methods.AllocationContext(
            batches=datamodule.allocation_batches() if method.needs_data else None,
            generator=torch.Generator().manual_seed(stream_seed(config.seed, "allocation")),
            input_shape=datamodule.input_shape,
            num_classes=datamodule.num_classes,
            dataset=config.dataset,
        )
        allocation = method.allocate(model, config.density, context=context)
        model = allocation.apply(model)
        alpha_init = _alphas(model)
        _record_allocation(engine, run_id, allocation, methods.trainable_parameter_count(model))
        stage = "training"
        module = PaIModule(
            model, preset, epochs, preset.lr_for(config.method), datamodule.num_classes
        )
        result = fit_and_test(
            module,
            datamodule,
            epochs=epochs,
            run_dir=runs_dir / config_hash,
            accelerator=config.accelerator,
            progress=progress,
        )
    except (methods.AllocationFailed, Exception) as error:
        reason = _record_failure(engine, run_id, stage, error)
        if isinstance(error, BenchError | FileNotFoundError):
            raise
        return RunOutcome(config, "failed", reason=reason)
    _record_result(engine, run_id, result, epochs, alpha_init, _alphas(model))
    return RunOutcome(config, "finished", test_acc=result.test_acc)


def _record_allocation(
    engine: Engine, run_id: int, allocation: methods.Allocation, trainable: int
) -> None:
    with session_scope(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.kept, run.total = allocation.kept, allocation.total
        run.achieved_density = allocation.achieved_density
        run.trainable_params = trainable
        run.layers.clear()
        session.flush()
        for index, layer in enumerate(allocation.layers()):
            run.layers.append(
                LayerAllocation(
                    layer_index=index, name=layer.name, kept=layer.kept, total=layer.total
                )
            )
        cost = allocation.cost
        if cost is not None:
            run.cost = AllocationCostRow(
                seconds=cost.seconds,
                peak_bytes=cost.peak_bytes,
                forward_passes=cost.forward_passes,
                backward_passes=cost.backward_passes,
                memory_source=cost.memory_source,
                info=_jsonable(allocation.info),
            )


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in info.items():
        out[key] = (
            value
            if isinstance(value, str | int | float | bool | type(None) | list | dict)
            else str(value)
        )
    return out


def _record_result(
    engine: Engine,
    run_id: int,
    result: TrainResult,
    epochs: int,
    alpha_init: dict[str, float],
    alpha_final: dict[str, float],
) -> None:
    with session_scope(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.status = "finished"
        run.best_val_acc, run.best_epoch = result.best_val_acc, result.best_epoch
        run.test_acc, run.train_seconds = result.test_acc, result.seconds
        run.epochs, run.resumed, run.finished_at = epochs, result.resumed, utcnow()
        existing = {m.epoch for m in run.epoch_metrics}
        for record in result.epochs:
            if record.epoch not in existing:
                run.epoch_metrics.append(
                    EpochMetric(
                        epoch=record.epoch,
                        train_loss=record.train_loss,
                        val_acc=record.val_acc,
                        lr=record.lr,
                    )
                )
        for layer in run.layers:
            layer.alpha_init = alpha_init.get(layer.name)
            layer.alpha_final = alpha_final.get(layer.name)


def run_grid(
    configs: Iterable[RunConfig],
    engine: Engine,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    *,
    show_progress: bool = True,
    echo=print,
) -> list[RunOutcome]:
    """Run every config in order, skipping those already in the DB, with a progress bar."""
    from tqdm.auto import tqdm

    configs = list(configs)
    outcomes: list[RunOutcome] = []
    bar = tqdm(configs, desc="grid", unit="run", disable=not show_progress, dynamic_ncols=True)
    for config in bar:
        bar.set_postfix_str(f"{config.method_spec} d={config.density:g} seed={config.seed}")
        outcome = run_config(config, engine, runs_dir)
        outcomes.append(outcome)
        if not outcome.skipped:
            detail = (
                f"test_acc={outcome.test_acc:.4f}"
                if outcome.status == "finished"
                else f"reason: {outcome.reason}"
            )
            line = (
                f"{outcome.status:8s} {config.arch}/{config.dataset} {config.method_spec:24s} "
                f"density={config.density:<8g} seed={config.seed} {detail}"
            )
            (bar.write if show_progress else echo)(line)
    skipped = sum(o.skipped for o in outcomes)
    if skipped:
        echo(f"skipped {skipped} of {len(outcomes)} runs already in the database")
    return outcomes
