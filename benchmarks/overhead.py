"""Harness overhead per training step: ``bench``'s Lightning path against a bare PyTorch loop.

    python benchmarks/overhead.py            # lenet5 (1x28x28, batch 64), resnet18 (3x32x32, 128)
    python benchmarks/overhead.py --quick    # lenet5 and resnet18_w16, fewer steps
    python benchmarks/overhead.py --archs lenet5 --threads 1

Both sides train the same model (same seed, same initial weights) with the same optimiser
(the ``adam`` preset: Adam, lr 1e-3, weight decay 5e-4) on the same in-memory tensors at the
same batch size. The harness side is what ``bench run`` does: :class:`bench.training.PaIModule`
in :func:`bench.training.fit_and_test` (Lightning's Trainer, checkpoints, per-epoch records)
over a :class:`bench.data.TensorDataModule`. The bare side is a plain loop over index slices of
the same tensors. Only training steps are timed, from the start of each epoch to the end of
its last step (data fetch included; validation and checkpoints, which happen between epochs,
excluded). Each side runs ``--epochs`` epochs per round and the first epoch of each round is a
warm-up; the sides alternate for ``--rounds`` rounds and the median per-step time of each side
is compared. Goals (issue 9): harness / bare <= 1.15 on lenet5, <= 1.05 on resnet18.

The data are random tensors of the data set's shape (the time of a step does not depend on the
pixel values), so the benchmark needs no data files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import architectures
from bench.data.base import Splits, TensorDataModule
from bench.presets import VAL_FRACTION, get_preset
from bench.training import PaIModule, fit_and_test

GOALS = {"lenet5": 1.15, "resnet18": 1.05}
SHAPES = {"lenet5": (1, 28, 28), "resnet18": (3, 32, 32), "resnet18_w16": (3, 32, 32)}
NUM_CLASSES = 10


class SyntheticData(TensorDataModule):
    """Random images of one shape, held in memory like every harness data set."""

    name = "synthetic"
    num_classes = NUM_CLASSES
    input_shape = (1, 28, 28)

    def __init__(self, x: torch.Tensor, y: torch.Tensor, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.input_shape = tuple(x.shape[1:])
        self._x, self._y = x, y

    def load(self) -> Splits:
        return Splits(self._x, self._y, self._x[:256], self._y[:256])


class StepTimer(Callback):
    """Seconds per training step of each epoch: epoch start to the end of its last step."""

    def __init__(self) -> None:
        self.per_step: list[float] = []
        self._start, self._last, self._steps = 0.0, 0.0, 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._steps = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._last, self._steps = time.perf_counter(), self._steps + 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.per_step.append((self._last - self._start) / self._steps)


@dataclass
class Setting:
    """One architecture's sizes."""

    arch: str
    batch: int
    steps: int  # training steps per epoch
    epochs: int  # per round, the first a warm-up

    def data(self) -> tuple[torch.Tensor, torch.Tensor]:
        # The harness holds out VAL_FRACTION for validation: make the training part exactly
        # ``steps`` full batches on both sides.
        n_train = self.batch * self.steps
        n_total = round(n_train / (1 - VAL_FRACTION))
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(n_total, *SHAPES[self.arch], generator=generator)
        y = torch.randint(0, NUM_CLASSES, (n_total,), generator=generator)
        return x, y

    def model(self) -> torch.nn.Module:
        return architectures.build(self.arch, NUM_CLASSES, input_shape=SHAPES[self.arch], seed=0)


def harness(setting: Setting, x: torch.Tensor, y: torch.Tensor, root: Path) -> list[float]:
    """Per-step seconds of each timed epoch through ``bench``'s own training path."""
    preset = get_preset("adam")
    data = SyntheticData(x, y, batch_size=setting.batch, seed=0)
    data.setup()
    assert len(data.x_train) == setting.batch * setting.steps
    module = PaIModule(setting.model(), preset, setting.epochs, preset.lr, NUM_CLASSES)
    timer = StepTimer()
    with tempfile.TemporaryDirectory(dir=root) as run_dir:
        fit_and_test(module, data, epochs=setting.epochs, run_dir=Path(run_dir), callbacks=[timer])
    return timer.per_step[1:]


def bare(setting: Setting, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Per-step seconds of each timed epoch of a plain PyTorch loop over the same tensors."""
    preset = get_preset("adam")
    n_train = setting.batch * setting.steps
    x, y = x[:n_train].contiguous(), y[:n_train].contiguous()
    model = setting.model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
    generator = torch.Generator().manual_seed(2)
    per_step: list[float] = []
    for _ in range(setting.epochs):
        order = torch.randperm(n_train, generator=generator)
        start = time.perf_counter()
        for i in range(0, n_train, setting.batch):
            index = order[i : i + setting.batch]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
        per_step.append((time.perf_counter() - start) / setting.steps)
    return per_step[1:]


def measure(setting: Setting, rounds: int, root: Path) -> tuple[float, float]:
    """Median per-step seconds of (harness, bare), the sides alternating round by round."""
    x, y = setting.data()
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        ours += harness(setting, x, y, root)
        theirs += bare(setting, x, y)
    return statistics.median(ours), statistics.median(theirs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=None, help="comma-separated (default lenet5,resnet18)")
    parser.add_argument("--quick", action="store_true", help="lenet5 and resnet18_w16, few steps")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two sides")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps per epoch (default per arch)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {
        "lenet5": Setting("lenet5", batch=64, steps=40, epochs=4),
        "resnet18": Setting("resnet18", batch=128, steps=8, epochs=3),
        "resnet18_w16": Setting("resnet18_w16", batch=128, steps=8, epochs=3),
    }
    if args.quick:
        settings["lenet5"] = Setting("lenet5", batch=64, steps=20, epochs=3)
    default = "lenet5,resnet18_w16" if args.quick else "lenet5,resnet18"
    names = (args.archs or default).split(",")
    if args.steps:
        settings = {k: replace(v, steps=args.steps) for k, v in settings.items()}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds; "
        "seconds per training step, median over timed epochs"
    )
    print(f"{'arch':14s} {'batch':>5s} {'harness s':>10s} {'bare s':>10s} {'ratio':>7s}  goal")
    with tempfile.TemporaryDirectory() as root:
        for name in names:
            setting = settings[name]
            ours, theirs = measure(setting, args.rounds, Path(root))
            ratio = ours / theirs
            goal = GOALS.get(name.split("_w")[0])
            verdict = ""
            if goal is not None:
                verdict = f"<= {goal:.2f}: " + (
                    "met" if ratio <= goal else f"missed by {ratio - goal:.2f}"
                )
            print(
                f"{name:14s} {setting.batch:5d} {ours:10.4f} {theirs:10.4f} {ratio:7.3f}  {verdict}"
            )


if __name__ == "__main__":
    main()
