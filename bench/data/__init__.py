"""Data sets as LightningDataModules, by name, in a registry (``bench/data/registry.py``).

Register a data set with ``@bench.data.register("name", ...)`` on a function returning its
splits or on a :class:`TensorDataModule` subclass, through the entry-point group
``paibench.datasets``, or in a ``--plugin`` file; see README "Adding a data set".
"""

from __future__ import annotations

# Import order is registration order (the order of listings and help): digits, the default,
# comes first.
# isort: off
from bench.data import digits as _digits  # noqa: F401  (registers the built-in sets)
from bench.data import fashion_mnist as _fashion_mnist  # noqa: F401
from bench.data import cifar as _cifar  # noqa: F401
from bench.data import tiny_imagenet as _tiny_imagenet  # noqa: F401

# isort: on
from bench.data.base import Splits, TensorDataModule
from bench.data.check import check_available
from bench.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from bench.data.digits import DigitsDataModule
from bench.data.fashion_mnist import FashionMNISTDataModule
from bench.data.registry import (
    DATASETS,
    ENTRY_POINT_GROUP,
    DatasetSpec,
    available,
    dataset_spec,
    make_datamodule,
    register,
    register_dataset,
    set_origin,
)
from bench.data.tiny_imagenet import TinyImageNetDataModule

__all__ = [
    "DATASETS",
    "ENTRY_POINT_GROUP",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DatasetSpec",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "Splits",
    "TensorDataModule",
    "TinyImageNetDataModule",
    "available",
    "check_available",
    "dataset_spec",
    "make_datamodule",
    "register",
    "register_dataset",
    "set_origin",
]
