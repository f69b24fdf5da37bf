"""How a method run with options is spelled, in one place (queries, configs and the CLI)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def method_spec(method: str, options: Mapping[str, Any] | None) -> str:
    """``method`` alone, or ``method:key=value,...`` (keys sorted) when it ran with options.

    Runs store only the options that differ from the method's defaults, so the runs of one
    method at its defaults share one label, and ``epf:within=filter`` never averages into
    ``epf``. The CLI spells a method the same way.
    """
    if not options:
        return method
    return f"{method}:" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))


# The config fields that make a training budget: runs differing in any of them are never
# averaged together (epochs, train subset, batch size, preset, precision, memory layout).
BUDGET_FIELDS = ("preset", "epochs", "train_subset", "batch_size", "precision", "channels_last")
DEFAULT_PRECISIONS = (None, "32", "32-true", 32)


def budget_label(config: Mapping[str, Any]) -> str:
    """The budget of a run's stored config in words, e.g. ``adam, 10 epochs, 5,000 images``.

    The label is the budget's identity in every query, table and figure: the preset, the epochs
    that ran, the training images (all of the split when no subset was given), and the batch
    size and precision when they are not the preset's.
    """
    parts = [str(config.get("preset") or "adam")]
    epochs = config.get("epochs")
    if epochs is None:
        parts.append("preset epochs")
    else:
        parts.append(f"{epochs} epoch" if epochs == 1 else f"{epochs} epochs")
    subset = config.get("train_subset")
    parts.append(f"{subset:,} images" if subset is not None else "all images")
    if config.get("batch_size") is not None:
        parts.append(f"batch {config['batch_size']}")
    if config.get("precision") not in DEFAULT_PRECISIONS:
        parts.append(str(config["precision"]))
    if config.get("channels_last"):
        parts.append("channels-last")
    return ", ".join(parts)
