"""Stacked training (``bench run --stack``): each model of a stack trains exactly as it would
alone (per-step losses equal to 1e-5 relative, same masks, initial weights and batches), keeps
its own rows, checkpoint and failure, and a grid trains every config once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch

import bench.data
import storage
from bench.cli import main
from bench.config import RunConfig
from bench.errors import BenchError
from bench.pipeline import PaIModule, Prepared, prepare
from bench.recorder import MemoryRecorder
from bench.resolve import resolve
from bench.stacking.canonical import Unstackable
from bench.stacking.pipeline import _canonical, run_stack
from bench.stacking.policy import StackPolicy, parse_stack, stack_key, stack_size
from bench.stacking.train import CHECKPOINT, Member, fit_stack
from bench.training import fit_and_test

STEPS = 20
IMAGES = "stacking-test-images"


def _images():
    """600 + 200 28x28 images, one noisy template per class: learnable in a few steps."""
    gen = torch.Generator().manual_seed(0)
    templates = torch.randn(10, 1, 28, 28, generator=gen)
    y = torch.arange(800) % 10
    x = templates[y] + 2.0 * torch.randn(800, 1, 28, 28, generator=gen)
    return x[:600], y[:600], x[600:], y[600:]


@pytest.fixture(autouse=True, scope="module")
def _registered_images() -> Iterator[None]:
    """The test data set, registered for this module only (other tests list the registry)."""
    from bench.data.registry import DATASETS

    register = bench.data.register(
        IMAGES, input_shape=(1, 28, 28), num_classes=10, default_arch="lenet5"
    )
    register(_images)
    yield
    DATASETS.pop(IMAGES)


class StepLosses(L.Callback):
    """Every training step's loss: a float alone, one per model in a stack."""

    def __init__(self) -> None:
        self.losses: list = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        stacked = getattr(module, "step_losses", None)
        if stacked is not None:
            self.losses.append(stacked.tolist())
        else:
            self.losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))


def _prepared(config: RunConfig, dtype: torch.dtype) -> Prepared:
    prepared = prepare(config, MemoryRecorder())
    prepared.model.to(dtype)
    module = prepared.datamodule
    for name in ("x_train", "x_val", "x_test"):
        setattr(module, name, getattr(module, name).to(dtype))
    module.x_test, module.y_test = module.x_test[:8], module.y_test[:8]  # accuracy is not tested
    return prepared


CASES = {
    # 20 steps: digits trains 1,617 images in 13 batches of 128, LeNet-5 here 540 in 23 of 24.
    "mlp": ("mlp", "digits", ("epl", "dctps", "dense", "snip"), {"epochs": 2}, torch.float32),
    "lenet5": (
        "lenet5",
        IMAGES,
        ("epl", "dctps", "dense"),
        {"batch_size": 24, "epochs": 1},
        torch.float32,
    ),
    # BatchNorm; float64 because a ResNet under Adam amplifies float32 rounding within 20 steps.
    "resnet18_w16": (
        "resnet18_w16",
        IMAGES,
        ("epl", "dctps"),
        {"batch_size": 2, "train_subset": 44, "epochs": 1},  # 40 images: 20 steps of 2
        torch.float64,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_model_steps_exactly_as_it_would_alone(case: str, tmp_path: Path) -> None:
    arch, dataset, names, budget, dtype = CASES[case]
    configs = [
        resolve(RunConfig(arch, dataset, m, 1.0 if m == "dense" else 0.05, seed=i, **budget))
        for i, m in enumerate(names)
    ]
    alone = []
    for config in configs:
        prepared, steps = _prepared(config, dtype), StepLosses()
        plan = prepared.plan
        module = PaIModule(prepared.model, plan.preset, plan.epochs, plan.lr, 10)
        fit_and_test(
            module,
            prepared.datamodule,
            epochs=plan.epochs,
            run_dir=tmp_path / f"alone-{config.config_hash()}",
            callbacks=[steps],
        )
        alone.append(steps.losses[:STEPS])
    stacked = [_prepared(c, dtype) for c in configs]
    members = [
        Member(p.model, _canonical(p, True).to(dtype), p.datamodule, tmp_path / str(i))
        for i, p in enumerate(stacked)
    ]
    steps = StepLosses()
    plan = stacked[0].plan
    results = fit_stack(members, plan.preset, epochs=plan.epochs, lr=plan.lr, callbacks=[steps])
    assert all(r.result is not None for r in results)
    assert len(steps.losses) >= STEPS
    for i, own in enumerate(alone):
        assert len(own) == STEPS
        together = torch.tensor([step[i] for step in steps.losses[:STEPS]], dtype=torch.float64)
        torch.testing.assert_close(
            together, torch.tensor(own, dtype=torch.float64), rtol=1e-5, atol=0
        )


def test_a_stacked_grid_records_the_rows_of_an_unstacked_one(tmp_path: Path) -> None:
    """Same configs with --stack 4 and --stack off: the same runs, epochs and accuracies."""
    grid = ["run", "--methods", "epl", "dctps", "snip", "hyperplane", "--densities", "0.1"]
    grid += ["--seeds", "0", "1", "--epochs", "2", "--train-subset", "300", "--no-progress"]
    frames = {}
    for stack in ("4", "off"):
        url = f"sqlite:///{tmp_path / stack}.db"
        assert (
            main([*grid, "--stack", stack, "--db", url, "--runs-dir", str(tmp_path / stack)]) == 0
        )
        frames[stack] = storage.runs(storage.open_db(url)).set_index("config_hash").sort_index()
    stacked, alone = frames["4"], frames["off"]
    assert list(stacked.index) == list(alone.index) and len(stacked) == 10
    assert set(stacked["status"]) == set(alone["status"]) == {"finished"}
    assert (stacked["epochs"] == 2).all()
    for column in ("test_acc", "best_val_acc"):
        assert (stacked[column] - alone[column]).abs().max() < 1e-6
    assert alone["stack"].isna().all()
    # Hyperplane Projection trains alone; the four other runs of each seed share one stack.
    hyper = stacked["method"] == "hyperplane"
    assert stacked.loc[hyper, "stack"].isna().all()
    sizes = stacked.loc[~hyper].groupby("seed")["stack"].agg(["nunique", "first"])
    assert (sizes["nunique"] == 1).all() and sizes["first"].str.endswith("/4").all()
    epochs = storage.epoch_metrics(storage.open_db(f"sqlite:///{tmp_path / '4'}.db"))
    assert sorted(epochs.groupby("run_id").size().tolist()) == [2] * 10


def test_a_model_whose_loss_turns_nan_is_dropped_and_the_others_finish(tmp_path: Path) -> None:
    configs = [resolve(RunConfig("mlp", "digits", "epl", 0.1, seed=s, epochs=2)) for s in (0, 1, 2)]
    recorders = [MemoryRecorder() for _ in configs]
    original = prepare

    def poisoned(config, recorder, device_index=None):
        prepared = original(config, recorder, device_index)
        if config.seed == 1:
            with torch.no_grad():
                next(prepared.model.parameters()).fill_(float("nan"))
        return prepared

    import bench.stacking.pipeline as stacked_pipeline

    stacked_pipeline.prepare = poisoned
    try:
        outcomes = run_stack(list(zip(configs, recorders)), tmp_path)
    finally:
        stacked_pipeline.prepare = original
    assert [o.status for o in outcomes] == ["finished", "failed", "finished"]
    assert "not finite" in outcomes[1].reason
    assert recorders[1].failures[0].stage == "training" and not recorders[1].results
    assert [len(r.epochs) for r in recorders] == [2, 0, 2]
    assert all(r.results[0].stack.endswith("/3") for r in (recorders[0], recorders[2]))
    assert (tmp_path / configs[0].config_hash() / CHECKPOINT).exists()


def test_a_killed_stack_resumes_from_its_members_checkpoints(tmp_path: Path) -> None:
    """Train 2 of 3 epochs, then resume: the result equals 3 epochs in one go."""
    configs = [
        resolve(RunConfig("mlp", "digits", m, 0.1, seed=0, epochs=3)) for m in ("epl", "dctps")
    ]

    def train(runs_dir: Path, epochs: int | None = None) -> list:
        prepared = [prepare(c, MemoryRecorder()) for c in configs]
        members = [
            Member(p.model, _canonical(p, True), p.datamodule, runs_dir / str(i))
            for i, p in enumerate(prepared)
        ]
        plan = prepared[0].plan
        if epochs is None:
            return fit_stack(members, plan.preset, epochs=plan.epochs, lr=plan.lr)
        return fit_stack(members, plan.preset, epochs=epochs, lr=plan.lr)

    whole = train(tmp_path / "whole")
    train(tmp_path / "parts", epochs=2)
    for i in range(2):  # a kill after epoch 2 leaves each member's stack.pt at epoch index 1
        assert torch.load(tmp_path / "parts" / str(i) / CHECKPOINT, weights_only=True)["epoch"] == 1
    resumed = train(tmp_path / "parts")
    for one, other in zip(whole, resumed):
        assert other.result.resumed and [r.epoch for r in other.result.epochs] == [2]
        assert other.result.test_acc == pytest.approx(one.result.test_acc, abs=1e-9)
        assert other.result.best_val_acc == pytest.approx(one.result.best_val_acc, abs=1e-9)


def test_hyperplane_networks_are_not_stackable() -> None:
    config = resolve(RunConfig("mlp", "digits", "hyperplane", 0.1, epochs=1))
    prepared = prepare(config, MemoryRecorder())
    with pytest.raises(Unstackable):
        _canonical(prepared, False)
    assert stack_key(config) == config.config_hash()


def test_stack_policy_parsing_and_the_auto_rule() -> None:
    assert parse_stack("off") == StackPolicy(1) and str(parse_stack("off")) == "off"
    assert parse_stack("8") == StackPolicy(8) and str(parse_stack("auto")) == "auto"
    for bad in ("0", "-2", "many"):
        with pytest.raises(BenchError, match=rf"bad --stack '{bad}' \(valid: a number"):
            parse_stack(bad)
    mlp = resolve(RunConfig("mlp", "digits", "epl", 0.1))
    lenet = resolve(RunConfig("lenet5", IMAGES, "epl", 0.1))
    auto = parse_stack("auto")
    assert stack_size(lenet, auto, on_gpu=False, batch_size=64) == 1  # measured slower on CPU
    assert 1 < stack_size(mlp, auto, on_gpu=False, batch_size=128) <= auto.limit
    assert stack_size(lenet, parse_stack("5"), on_gpu=False, batch_size=64) == 5
    assert stack_size(mlp, parse_stack("off"), on_gpu=False, batch_size=128) == 1
    # What may differ inside a stack: method, options, density, seed; not the budget.
    same = resolve(RunConfig("mlp", "digits", "snip", 0.01, seed=3))
    assert stack_key(mlp) == stack_key(same)
    assert stack_key(mlp) != stack_key(resolve(RunConfig("mlp", "digits", "epl", 0.1, epochs=3)))
    sgd = [resolve(RunConfig("mlp", "digits", m, 0.1, preset="sgd")) for m in ("epl", "dctps")]
    assert stack_key(sgd[0]) != stack_key(sgd[1])  # DCTpS trains at its own SGD rate
