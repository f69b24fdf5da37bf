"""Data sets as LightningDataModules, by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.data.base import Splits, TensorDataModule
from bench.data.digits import DigitsDataModule
from bench.errors import BenchError


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set, its module class and its CPU-scale defaults."""

    name: str
    module: type[TensorDataModule]
    default_arch: str
    # Epochs when neither --epochs nor a preset for this data set is given: digits is a smoke-scale
    # set, so its default budget is small; the paper's data sets use the preset's 200.
    default_epochs: int | None = None


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec("digits", DigitsDataModule, default_arch="mlp", default_epochs=15),
}


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of data set ``name`` or an error naming the valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise BenchError(f"unknown dataset {name!r} (valid: {', '.join(DATASETS)})") from None


def make_datamodule(name: str, **kwargs: Any) -> TensorDataModule:
    """Instantiate the data module of ``name`` with loader options (batch size, seed, ...)."""
    return dataset_spec(name).module(**kwargs)


__all__ = ["DATASETS", "DatasetSpec", "Splits", "TensorDataModule", "dataset_spec", "make_datamodule"]
