"""The harness-overhead benchmark measures what it says: both sides take the same steps, in the
same precision and memory layout."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

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


@pytest.mark.parametrize(("precision", "channels_last"), [("bf16-mixed", False), ("32", True)])
def test_both_sides_take_the_precision_and_the_layout(
    overhead, tmp_path: Path, precision: str, channels_last: bool
) -> None:
    setting = overhead.Setting(
        "lenet5", batch=8, steps=2, epochs=2, precision=precision, channels_last=channels_last
    )
    assert setting.accelerator == "cpu"
    x, y = setting.data()
    assert len(overhead.harness(setting, x, y, tmp_path)) == 1
    assert len(overhead.bare(setting, x, y)) == 1


def test_bare_loop_autocasts_only_mixed_precision(overhead) -> None:
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    for precision, dtype in (("32", "float32"), ("bf16-mixed", "bfloat16")):
        setting = overhead.Setting("lenet5", batch=8, steps=1, epochs=2, precision=precision)
        with overhead.autocast(setting):
            assert str(layer(x).dtype) == f"torch.{dtype}"


def test_arguments_expand_to_every_precision_and_layout(overhead) -> None:
    args = overhead.parse_args(
        ["--archs", "lenet5,resnet18", "--precision", "32,bf16-mixed", "--both-layouts"]
    )
    settings = overhead.settings_for(args)
    assert [(s.arch, s.precision, s.layout) for s in settings[:4]] == [
        ("lenet5", "32", "contiguous"),
        ("lenet5", "32", "channels-last"),
        ("lenet5", "bf16-mixed", "contiguous"),
        ("lenet5", "bf16-mixed", "channels-last"),
    ]
    assert len(settings) == 8 and {s.device.type for s in settings} == {"cpu"}
    assert overhead.settings_for(overhead.parse_args([]))[0].layout == "contiguous"
    with pytest.raises(SystemExit):
        overhead.parse_args(["--precision", "64"])
