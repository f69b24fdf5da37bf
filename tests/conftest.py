"""Shared fixtures: small models, a data context for data-driven methods, a temporary database,
and the hypothesis profiles.

Hypothesis profiles: the test command (``python -m pytest``) runs every property test
derandomized, the same examples on every machine, so CI never meets a new counterexample by
chance. ``PAIBENCH_HYPOTHESIS=explore python -m pytest ...`` draws random examples and more of
them, for a developer to look for new counterexamples (and add any found as an ``@example``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

import architectures
import methods

HYPOTHESIS_ENV = "PAIBENCH_HYPOTHESIS"
EXPLORE_FACTOR = 10  # how many times more examples a test draws under the explore profile

settings.register_profile(
    "deterministic", derandomize=True, deadline=None, print_blob=True, database=None
)
settings.register_profile(
    "explore", derandomize=False, deadline=None, print_blob=True, max_examples=1000
)
HYPOTHESIS_PROFILE = os.environ.get(HYPOTHESIS_ENV) or "deterministic"
if HYPOTHESIS_PROFILE not in ("deterministic", "explore"):
    raise pytest.UsageError(
        f"{HYPOTHESIS_ENV}={HYPOTHESIS_PROFILE!r} is not a profile (valid: deterministic, explore)"
    )
settings.load_profile(HYPOTHESIS_PROFILE)


def examples(n: int) -> int:
    """``max_examples`` for a test that sets its own: ``n``, or ``EXPLORE_FACTOR * n`` when
    exploring (a test's own ``max_examples`` would otherwise override the explore profile's)."""
    return n * EXPLORE_FACTOR if HYPOTHESIS_PROFILE == "explore" else n


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
