"""scikit-learn's real ``digits`` data set (1,797 8x8 images): the embedded, offline default."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from sklearn.datasets import load_digits

from bench.data.base import Splits, TensorDataModule
from bench.data.registry import register

TEST_FRACTION = 0.2  # digits ships one pool of images; a fixed 20% is the test set


@lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's images and labels, read once per process (a check before the grid and
    every run in the same process share them; each load copies them into new tensors)."""
    data = load_digits()
    return data.images, data.target


@register(
    "digits",
    default_arch="mlp",
    default_epochs=50,
    description="scikit-learn's real digits set, shipped with the package: no download",
)
class DigitsDataModule(TensorDataModule):
    """Digits scaled to [0, 1] and standardised; the test split is fixed (seed 0), not per run."""

    name = "digits"
    input_shape = (1, 8, 8)
    num_classes = 10

    def load(self) -> Splits:
        images, target = digits_arrays()
        x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(target, dtype=torch.long)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        n_test = round(TEST_FRACTION * len(y))
        test, train = order[:n_test], order[n_test:]
        mean, std = x[train].mean(), x[train].std()
        x = (x - mean) / std
        return Splits(x[train], y[train], x[test], y[test])
