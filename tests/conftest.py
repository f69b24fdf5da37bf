"""Shared fixtures: small models, a data context for data-driven methods, a temporary database."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import architectures
import methods


def small_models() -> dict[str, torch.nn.Module]:
    """Models small enough to allocate hundreds of times in a test."""
    return {
        "mlp": architectures.build("mlp", 10, input_shape=(1, 8, 8), seed=0),
        "small_cnn": architectures.build("small_cnn", 10, input_shape=(1, 8, 8), seed=0),
    }


def data_context(seed: int = 0, batch_size: int = 32) -> methods.AllocationContext:
    """An AllocationContext with an endless stream of random digits-shaped batches."""
    data_gen = torch.Generator().manual_seed(1234 + seed)

    def batches():
        while True:
            yield (
                torch.randn(batch_size, 1, 8, 8, generator=data_gen),
                torch.randint(0, 10, (batch_size,), generator=data_gen),
            )

    return methods.AllocationContext(
        batches=batches,
        generator=torch.Generator().manual_seed(seed),
        input_shape=(1, 8, 8),
        num_classes=10,
        dataset="digits",
    )


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bench.db'}"
