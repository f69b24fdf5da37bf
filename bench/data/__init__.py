"""Data sets as LightningDataModules, by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.data.base import Splits, TensorDataModule
from bench.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from bench.data.digits import DigitsDataModule
from bench.data.fashion_mnist import FashionMNISTDataModule
from bench.data.tiny_imagenet import TinyImageNetDataModule
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
    "digits": DatasetSpec("digits", DigitsDataModule, default_arch="mlp", default_epochs=50),
    "fashion-mnist": DatasetSpec("fashion-mnist", FashionMNISTDataModule, default_arch="resnet18"),
    "cifar10": DatasetSpec("cifar10", CIFAR10DataModule, default_arch="resnet18"),
    "cifar100": DatasetSpec("cifar100", CIFAR100DataModule, default_arch="resnet18"),
    "tiny-imagenet": DatasetSpec("tiny-imagenet", TinyImageNetDataModule, default_arch="resnet18"),
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


__all__ = [
    "DATASETS",
    "DatasetSpec",
    "Splits",
    "TensorDataModule",
    "dataset_spec",
    "make_datamodule",
]
