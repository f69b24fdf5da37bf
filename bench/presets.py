"""The paper's training protocol (Table 4), in one place.

``adam`` and ``sgd`` carry every number of Table 4; LeNet-5 runs used batch 64 and 160 epochs,
and DCTpS networks trained with SGD used a base learning rate of 0.03 (Table 4's note). The SGD
decay epochs 120 and 160 of 200 are kept as fractions (0.6, 0.8) so that a run scaled down with
``--epochs`` decays at the same points of its budget.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from bench.errors import BenchError

VAL_FRACTION = 0.1  # paper E.5: 10% of the training data withheld for validation


@dataclass(frozen=True)
class TrainingPreset:
    """Optimiser and schedule of one training protocol."""

    name: str
    optimizer: Literal["adam", "sgd"]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    momentum: float = 0.0
    decay_at: tuple[float, ...] = ()
    decay_factor: float = 1.0
    dctps_lr: float | None = None

    def milestones(self, epochs: int) -> list[int]:
        """Epochs at which the learning rate drops, for a run of ``epochs`` epochs."""
        return [round(f * epochs) for f in self.decay_at]

    def lr_for(self, method: str) -> float:
        """The base learning rate for ``method`` (DCTpS has its own under SGD)."""
        if method == "dctps" and self.dctps_lr is not None:
            return self.dctps_lr
        return self.lr


PRESETS: dict[str, TrainingPreset] = {
    "adam": TrainingPreset("adam", "adam", epochs=200, batch_size=128, lr=1e-3, weight_decay=5e-4),
    "sgd": TrainingPreset(
        "sgd",
        "sgd",
        epochs=200,
        batch_size=128,
        lr=0.1,
        weight_decay=5e-4,
        momentum=0.9,
        decay_at=(0.6, 0.8),
        decay_factor=0.1,
        dctps_lr=0.03,
    ),
}

# Architecture-specific departures from a preset (Table 4's caption).
ARCH_OVERRIDES: dict[str, dict[str, int]] = {"lenet5": {"batch_size": 64, "epochs": 160}}


def get_preset(name: str, arch: str | None = None) -> TrainingPreset:
    """The preset ``name`` with the paper's per-architecture overrides applied."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise BenchError(f"unknown preset {name!r} (valid: {', '.join(PRESETS)})") from None
    if arch in ARCH_OVERRIDES:
        preset = replace(preset, **ARCH_OVERRIDES[arch])
    return preset
