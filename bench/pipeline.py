"""One run, end to end: config -> model -> allocate -> apply -> train -> outcome.

The pipeline imports no database code: it reports what happens through a
:class:`~bench.recorder.Recorder` as plain rows. A failure of the run (an exception in
allocation or training) is a result, reported as a failure row and returned; an environment
error (a bad input, a missing data file), an interrupt or a lost claim propagates, since it
says nothing about the method.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

import architectures
import methods
from bench.config import RunConfig, stream_seed
from bench.data import dataset_spec, make_datamodule
from bench.data.base import TensorDataModule
from bench.errors import BenchError
from bench.provenance import provenance
from bench.recorder import Recorder
from bench.resolve import TrainingPlan, training_plan
from bench.spectrum import jacobian_spectrum, spectrum_batch
from bench.threads import prepare_environment
from bench.training import EpochRecord, PaIModule, TrainResult, fit_and_test
from storage.rows import (
    AllocationRow,
    CostRow,
    EpochRow,
    FailureRow,
    LayerRow,
    LostClaim,
    ResultRow,
)

DEFAULT_RUNS_DIR = Path("runs")
prepare_environment()  # before the first CUDA call of this process


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one config.

    ``status``: ``finished`` or ``failed`` (trained here), ``skipped`` (already in the database),
    ``busy`` (held by another live worker, or taken over by one).
    """

    config: RunConfig
    status: str
    test_acc: float | None = None
    reason: str | None = None
    skipped: bool = False


def traceback_digest(error: BaseException) -> str:
    """A short SHA-256 of the formatted traceback, so equal crashes can be grouped."""
    frames = traceback.format_exception(type(error), error, error.__traceback__)
    return hashlib.sha256("".join(frames).encode()).hexdigest()[:16]


def failure_row(stage: str, error: BaseException) -> FailureRow:
    """The failure row of ``error`` raised at ``stage``."""
    reason = getattr(error, "reason", None) or str(error) or type(error).__name__
    return FailureRow(stage, reason, type(error).__name__, traceback_digest(error))


def allocation_row(allocation: methods.Allocation, trainable: int) -> AllocationRow:
    """The plain row of an allocation: counts, layers and cost."""
    cost = allocation.cost
    return AllocationRow(
        kept=allocation.kept,
        total=allocation.total,
        achieved_density=allocation.achieved_density,
        trainable_params=trainable,
        layers=[LayerRow(layer.name, layer.kept, layer.total) for layer in allocation.layers()],
        cost=None
        if cost is None
        else CostRow(
            seconds=cost.seconds,
            peak_bytes=cost.peak_bytes,
            forward_passes=cost.forward_passes,
            backward_passes=cost.backward_passes,
            memory_source=cost.memory_source,
            info=dict(allocation.info),
        ),
    )


def epoch_row(record: EpochRecord) -> EpochRow:
    return EpochRow(
        record.epoch, record.train_loss, record.val_acc, record.lr, record.seconds, record.steps
    )


def run_device(config: RunConfig, index: int | None = None) -> torch.device:
    """The device a run allocates and trains on: GPU ``index`` (default 0) when its accelerator
    asks for one (``auto``: when one is visible), else the CPU."""
    wants_gpu = config.accelerator == "gpu" or (
        config.accelerator == "auto" and torch.cuda.is_available()
    )
    return torch.device("cuda", index or 0) if wants_gpu else torch.device("cpu")


@dataclass
class Prepared:
    """A run after allocation, ready to train: what training and the result row need."""

    config: RunConfig
    plan: TrainingPlan
    datamodule: TensorDataModule
    model: torch.nn.Module
    device: torch.device
    alpha_init: dict[str, float]


def prepare(config: RunConfig, recorder: Recorder, device_index: int | None = None) -> Prepared:
    """Setup, allocation and (when asked) the spectrum of ``config``, reported to ``recorder``.

    Raises :class:`StageError` (carrying the stage) when the run fails; environment errors
    propagate as they are.
    """
    device = run_device(config, device_index)
    stage = "setup"
    try:
        method = methods.get(config.method, **config.options)
        plan = training_plan(config, method)
        spec = dataset_spec(config.dataset)
        datamodule = make_datamodule(
            config.dataset,
            batch_size=plan.batch_size,
            seed=config.seed,
            train_subset=config.train_subset,
            data_dir=config.data_dir,
            download=config.download,
        )
        datamodule.setup()
        recorder.started(provenance(device, datamodule.num_classes))
        model = architectures.build(
            config.arch,
            datamodule.num_classes,
            input_shape=datamodule.input_shape,
            seed=stream_seed(config.seed, "init"),
        )
        stage = "allocation"
        context = methods.AllocationContext(
            batches=datamodule.allocation_batches() if method.needs_data else None,
            generator=torch.Generator().manual_seed(stream_seed(config.seed, "allocation")),
            input_shape=datamodule.input_shape,
            num_classes=datamodule.num_classes,
            batches_per_step=spec.batches_per_step,
            device=device,
        )
        allocation = method.allocate(model, config.density, context=context)
        model = allocation.apply(model)
        alpha_init = architectures.dctps_alphas(model)
        recorder.allocation(allocation_row(allocation, methods.trainable_parameter_count(model)))
        if config.spectrum:
            stage = "spectrum"
            batch = spectrum_batch(datamodule.x_train, stream_seed(config.seed, "spectrum"))
            recorder.spectrum(jacobian_spectrum(model, batch).tolist())
        if device.type == "cuda":
            datamodule.to_device(device)
    except (LostClaim, BenchError, FileNotFoundError):
        raise
    except Exception as error:
        raise StageError(stage, error) from error
    return Prepared(config, plan, datamodule, model, device, alpha_init)


class StageError(Exception):
    """A failure of the run itself (not of its environment), at ``stage``."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(str(error))
        self.stage, self.error = stage, error


def fail(config: RunConfig, recorder: Recorder, stage: str, error: BaseException) -> RunOutcome:
    """Report ``error`` at ``stage`` as the run's failure."""
    row = failure_row(stage, error)
    recorder.failed(row)
    return RunOutcome(config, "failed", reason=row.reason)


def finish(
    prepared: Prepared, result: TrainResult, recorder: Recorder, stack: str | None = None
) -> RunOutcome:
    """Report the finished run's result row (alphas read from its trained network)."""
    recorder.finished(
        ResultRow(
            best_val_acc=result.best_val_acc,
            test_acc=result.test_acc,
            train_seconds=result.seconds,
            epochs=prepared.plan.epochs,
            resumed=result.resumed,
            best_epoch=result.best_epoch,
            alpha_init=prepared.alpha_init,
            alpha_final=architectures.dctps_alphas(prepared.model),
            nondeterministic_ops=result.nondeterministic_ops,
            stack=stack,
        )
    )
    return RunOutcome(prepared.config, "finished", test_acc=result.test_acc)


def run_one(
    config: RunConfig,
    recorder: Recorder,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    progress: bool = False,
    device_index: int | None = None,
) -> RunOutcome:
    """Train the resolved ``config``, reporting to ``recorder``; returns finished or failed.

    Allocation, data and training all live on :func:`run_device` (GPU ``device_index``).
    """
    try:
        prepared = prepare(config, recorder, device_index)
    except StageError as failure:
        return fail(config, recorder, failure.stage, failure.error)
    return train_alone(prepared, recorder, runs_dir, progress)


def train_alone(
    prepared: Prepared, recorder: Recorder, runs_dir: Path, progress: bool = False
) -> RunOutcome:
    """Train one prepared run by itself (Lightning's loop, checkpoints and resume)."""
    config, device, plan = prepared.config, prepared.device, prepared.plan
    on_gpu = device.type == "cuda"
    try:
        module = PaIModule(
            prepared.model,
            plan.preset,
            plan.epochs,
            plan.lr,
            prepared.datamodule.num_classes,
            channels_last=config.channels_last,
        )
        result = fit_and_test(
            module,
            prepared.datamodule,
            epochs=plan.epochs,
            run_dir=runs_dir / config.config_hash(),
            accelerator="gpu" if on_gpu else "cpu",
            devices=[device.index or 0] if on_gpu else None,
            precision=config.precision,
            progress=progress,
            on_epoch=lambda record: recorder.epoch(epoch_row(record)),
        )
    except (LostClaim, BenchError, FileNotFoundError):
        raise
    except Exception as error:
        return fail(config, recorder, "training", error)
    return finish(prepared, result, recorder)


def summary_line(outcome: RunOutcome) -> str:
    """The one line printed for each run trained."""
    config = outcome.config
    if outcome.status == "finished":
        detail = f"test_acc={outcome.test_acc:.4f}"
    else:
        detail = f"reason: {outcome.reason}"
    return (
        f"{outcome.status:8s} {config.arch}/{config.dataset} {config.method_spec:24s} "
        f"density={config.density:<8g} seed={config.seed} {detail}"
    )
