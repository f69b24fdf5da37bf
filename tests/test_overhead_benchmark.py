"""The harness-overhead benchmark measures what it says: both sides take the same steps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def overhead():
    spec = importlib.util.spec_from_file_location("overhead", ROOT / "benchmarks" / "overhead.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["overhead"] = module
    spec.loader.exec_module(module)
    return module


def test_both_sides_time_the_same_number_of_epochs(overhead, tmp_path: Path) -> None:
    setting = overhead.Setting("lenet5", batch=16, steps=3, epochs=3)
    x, y = setting.data()
    assert len(x) == round(16 * 3 / 0.9)
    timer_epochs = overhead.harness(setting, x, y, tmp_path)
    bare_epochs = overhead.bare(setting, x, y)
    # The first epoch of each side is a warm-up; the rest are per-step seconds.
    assert len(timer_epochs) == len(bare_epochs) == 2
    assert all(t > 0 for t in timer_epochs + bare_epochs)


def test_step_timer_counts_every_training_step(overhead, tmp_path: Path) -> None:
    """fit_and_test hands extra callbacks to Lightning: the timer sees each epoch's steps."""
    setting = overhead.Setting("lenet5", batch=8, steps=5, epochs=2)
    timer = overhead.StepTimer()
    calls: list[int] = []
    original = timer.on_train_batch_end

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    timer.on_train_batch_end = counting
    x, y = setting.data()
    from bench.presets import get_preset
    from bench.training import PaIModule, fit_and_test

    data = overhead.SyntheticData(x, y, batch_size=8, seed=0)
    module = PaIModule(setting.model(), get_preset("adam"), 2, 1e-3, 10)
    fit_and_test(module, data, epochs=2, run_dir=tmp_path / "run", callbacks=[timer])
    assert len(calls) == 2 * 5 and len(timer.per_step) == 2
