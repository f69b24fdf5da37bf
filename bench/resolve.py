"""Resolving a config: every name and value checked once, and the budget a run really trains.

:func:`resolve` runs when a grid is expanded (before any file is created); the pipeline then
reads the resolved config and asks :func:`training_plan` for the optimiser settings, built from
the preset, the architecture's own departures from it and the method's own learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import architectures
import methods
from bench.config import RunConfig
from bench.data import dataset_spec
from bench.errors import BenchError
from bench.presets import TrainingPreset, get_preset


def canonical_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Typed options of ``method`` minus those equal to their default (keeps hashes stable).

    Building the method checks every option's type and range.
    """
    instance = methods.get(method, **options)
    defaults = {info.name: info.default for info in methods.options_of(type(instance))}
    resolved = instance.options()
    return {k: resolved[k] for k in sorted(options) if resolved.get(k) != defaults.get(k)}


def arch_preset(name: str, arch: str) -> TrainingPreset:
    """Preset ``name`` with the architecture's own departures from it (LeNet-5: Table 4)."""
    preset = get_preset(name)
    overrides = architectures.spec(arch).training_overrides
    return replace(preset, **overrides) if overrides else preset


def effective_epochs(config: RunConfig) -> int:
    """--epochs if given, else the data set's CPU default, else the preset's (paper) epochs."""
    if config.epochs is not None:
        return config.epochs
    default = dataset_spec(config.dataset).default_epochs
    return default if default is not None else arch_preset(config.preset, config.arch).epochs


def resolve(config: RunConfig) -> RunConfig:
    """Check every name and value of ``config`` (BenchError naming the bad one); fix its budget.

    The returned config stores the epochs that will run and only non-default method options,
    so its hash says what really runs.
    """
    spec = dataset_spec(config.dataset)
    try:
        arch = architectures.spec(config.arch)
        options = canonical_options(config.method, config.options)
        methods.check_density(config.density)
    except (methods.UnknownMethod, architectures.UnknownArchitecture, ValueError) as error:
        raise BenchError(str(error)) from None
    shape = spec.module.input_shape
    if not arch.accepts(shape):
        raise BenchError(
            f"architecture {config.arch!r} does not accept {config.dataset!r} inputs "
            f"{shape} (it accepts {arch.accepts_text})"
        )
    get_preset(config.preset)
    return replace(config, options=options, epochs=effective_epochs(config))


@dataclass(frozen=True)
class TrainingPlan:
    """What the optimiser of one run is: the preset as it applies, epochs, batch size and lr."""

    preset: TrainingPreset
    epochs: int
    batch_size: int
    lr: float


def training_plan(config: RunConfig, method: methods.Method) -> TrainingPlan:
    """The training settings of a resolved ``config`` trained after ``method``."""
    preset = arch_preset(config.preset, config.arch)
    return TrainingPlan(
        preset=preset,
        epochs=effective_epochs(config),
        batch_size=config.batch_size or preset.batch_size,
        lr=method.learning_rate(preset.optimizer, preset.lr),
    )
