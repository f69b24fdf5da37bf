"""Harness overhead per training step: ``bench``'s Lightning path against a bare PyTorch loop.

    python benchmarks/overhead.py            # lenet5 (1x28x28, batch 64), resnet18 (3x32x32, 128)
    python benchmarks/overhead.py --quick    # lenet5 and resnet18_w16, fewer steps
    python benchmarks/overhead.py --archs lenet5 --threads 1
    python benchmarks/overhead.py --accelerator gpu --precision 32,bf16-mixed --both-layouts

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

``--accelerator gpu`` runs both sides on GPU 0 (the harness with its data moved to the device once,
as ``bench run`` does; the bare loop over the same tensors on the device), ``--precision`` trains
both sides in Lightning's precision (the bare loop under ``torch.autocast``, with a gradient
scaler for ``16-mixed`` on CUDA, as Lightning does) and ``--channels-last`` both in the
channels-last layout (model and batches). ``--precision`` takes a comma-separated list and
``--both-layouts`` measures each precision in both layouts. On CUDA the clock is read after a
synchronisation at the start and the end of each timed epoch, on both sides. Both sides run with
deterministic algorithms in warn mode and cuDNN's benchmark off, as ``bench run`` trains.
``--csv FILE`` appends one row per setting.

The data are random tensors of the data set's shape (the time of a step does not depend on the
pixel values), so the benchmark needs no data files.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# cuBLAS's deterministic mode needs its workspace fixed before CUDA starts (as bench sets it).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import architectures
from bench.data.base import Splits, TensorDataModule
from bench.presets import VAL_FRACTION, get_preset
from bench.training import PaIModule, fit_and_test

GOALS = {"lenet5": 1.15, "resnet18": 1.05}
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
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


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that the clock reads what it did (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(Callback):
    """Seconds per training step of each epoch: epoch start to the end of its last step.

    On CUDA the device is synchronised before the clock is read at the epoch's start and after
    its last step (not after the others, which would stall the queue the bare loop keeps full).
    """

    def __init__(self) -> None:
        self.per_step: list[float] = []
        self._start, self._last, self._steps = 0.0, 0.0, 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self._start, self._steps = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx == trainer.num_training_batches - 1:
            synchronize(pl_module.device)
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
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "32"
    channels_last: bool = False

    @property
    def accelerator(self) -> str:
        return "gpu" if self.device.type == "cuda" else "cpu"

    @property
    def layout(self) -> str:
        return "channels-last" if self.channels_last else "contiguous"

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
    if setting.device.type == "cuda":
        data.to_device(setting.device)  # as bench run does: moved once, indexed on the device
    module = PaIModule(
        setting.model(),
        preset,
        setting.epochs,
        preset.lr,
        NUM_CLASSES,
        channels_last=setting.channels_last,
    )
    timer = StepTimer()
    with tempfile.TemporaryDirectory(dir=root) as run_dir:
        fit_and_test(
            module,
            data,
            epochs=setting.epochs,
            run_dir=Path(run_dir),
            accelerator=setting.accelerator,
            devices=[setting.device.index or 0] if setting.device.type == "cuda" else None,
            precision=setting.precision,
            callbacks=[timer],
        )
    return timer.per_step[1:]


@contextlib.contextmanager
def autocast(setting: Setting) -> Iterator[None]:
    """Lightning's mixed precision for the forward pass and the loss; nothing for ``32``."""
    dtype = AUTOCAST_DTYPES.get(setting.precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=setting.device.type, dtype=dtype):
        yield


def bare(setting: Setting, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Per-step seconds of each timed epoch of a plain PyTorch loop over the same tensors."""
    preset = get_preset("adam")
    device = setting.device
    torch.use_deterministic_algorithms(True, warn_only=True)  # what the harness's Trainer sets
    torch.backends.cudnn.benchmark = False
    n_train = setting.batch * setting.steps
    x, y = x[:n_train].to(device).contiguous(), y[:n_train].to(device).contiguous()
    model = setting.model().to(device).train()
    if setting.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
    scaler = torch.amp.GradScaler(
        device.type, enabled=setting.precision == "16-mixed" and device.type == "cuda"
    )
    generator = torch.Generator().manual_seed(2)
    per_step: list[float] = []
    for _ in range(setting.epochs):
        order = torch.randperm(n_train, generator=generator).to(device)
        synchronize(device)
        start = time.perf_counter()
        for i in range(0, n_train, setting.batch):
            index = order[i : i + setting.batch]
            batch = x[index]
            if setting.channels_last and batch.ndim == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with autocast(setting):
                loss = F.cross_entropy(model(batch), y[index])
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        synchronize(device)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=None, help="comma-separated (default lenet5,resnet18)")
    parser.add_argument("--quick", action="store_true", help="lenet5 and resnet18_w16, few steps")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two sides")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps per epoch (default per arch)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs per round, 1 warm-up")
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument(
        "--precision", default="32", help=f"comma-separated, of {', '.join(PRECISIONS)}"
    )
    parser.add_argument("--channels-last", action="store_true", help="channels-last layout")
    parser.add_argument(
        "--both-layouts", action="store_true", help="each precision contiguous and channels-last"
    )
    parser.add_argument("--csv", type=Path, default=None, help="append one row per setting")
    args = parser.parse_args(argv)
    args.precisions = args.precision.split(",")
    for precision in args.precisions:
        if precision not in PRECISIONS:
            parser.error(f"unknown precision {precision!r} (valid: {', '.join(PRECISIONS)})")
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        parser.error("--accelerator gpu: no CUDA device is visible")
    return args


def settings_for(args: argparse.Namespace) -> list[Setting]:
    """Every (arch, precision, layout) the arguments ask for, in that order."""
    base = {
        "lenet5": Setting("lenet5", batch=64, steps=40, epochs=4),
        "resnet18": Setting("resnet18", batch=128, steps=8, epochs=3),
        "resnet18_w16": Setting("resnet18_w16", batch=128, steps=8, epochs=3),
    }
    if args.quick:
        base["lenet5"] = Setting("lenet5", batch=64, steps=20, epochs=3)
    default = "lenet5,resnet18_w16" if args.quick else "lenet5,resnet18"
    device = torch.device("cuda", 0) if args.accelerator == "gpu" else torch.device("cpu")
    layouts = (False, True) if args.both_layouts else (args.channels_last,)
    out = []
    for name in (args.archs or default).split(","):
        setting = replace(base[name], device=device)
        if args.steps:
            setting = replace(setting, steps=args.steps)
        if args.epochs:
            setting = replace(setting, epochs=max(2, args.epochs))
        for precision in args.precisions:
            for channels_last in layouts:
                out.append(replace(setting, precision=precision, channels_last=channels_last))
    return out


def append_csv(path: Path | None, row: dict) -> None:
    """Append one row (a header first into a new file): a run cut short keeps what it measured."""
    if path is None:
        return
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda:0 " + torch.cuda.get_device_name(0) if args.accelerator == "gpu" else "cpu"
    print(
        f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, "
        f"{args.rounds} rounds; seconds per training step, median over timed epochs"
    )
    print(
        f"{'arch':14s} {'batch':>5s} {'precision':>10s} {'layout':>13s} {'harness s':>10s} "
        f"{'bare s':>10s} {'ratio':>7s}  goal"
    )
    with tempfile.TemporaryDirectory() as root:
        for setting in settings_for(args):
            ours, theirs = measure(setting, args.rounds, Path(root))
            ratio = ours / theirs
            goal = GOALS.get(setting.arch.split("_w")[0])
            verdict = ""
            if goal is not None:
                verdict = f"<= {goal:.2f}: " + (
                    "met" if ratio <= goal else f"missed by {ratio - goal:.2f}"
                )
            print(
                f"{setting.arch:14s} {setting.batch:5d} {setting.precision:>10s} "
                f"{setting.layout:>13s} {ours:10.4f} {theirs:10.4f} {ratio:7.3f}  {verdict}",
                flush=True,
            )
            append_csv(
                args.csv,
                {
                    "arch": setting.arch,
                    "batch": setting.batch,
                    "device": setting.device.type,
                    "precision": setting.precision,
                    "layout": setting.layout,
                    "steps": setting.steps,
                    "harness_s": ours,
                    "bare_s": theirs,
                    "ratio": ratio,
                    "goal": goal or "",
                },
            )


if __name__ == "__main__":
    main()
