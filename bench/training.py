"""Training with Lightning: the LightningModule, its optimisers, and one fit-and-test call."""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from bench.data.base import TensorDataModule
from bench.presets import TrainingPreset


class PaIModule(L.LightningModule):
    """A classifier trained with cross-entropy; accuracy through torchmetrics."""

    def __init__(
        self,
        model: nn.Module,
        preset: TrainingPreset,
        epochs: int,
        lr: float,
        num_classes: int,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.preset, self.epochs, self.lr = preset, epochs, lr
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_fit_start(self) -> None:
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.val_acc(self.model(x), y)
        self.log("val_acc", self.val_acc, on_step=False, on_epoch=True, batch_size=len(y))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.test_acc(self.model(x), y)
        self.log("test_acc", self.test_acc, on_step=False, on_epoch=True, batch_size=len(y))

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        p = self.preset
        if p.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=p.weight_decay)
        optimizer = torch.optim.SGD(
            params, lr=self.lr, momentum=p.momentum, weight_decay=p.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=p.milestones(self.epochs), gamma=p.decay_factor
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


@dataclass
class EpochRecord:
    """What one epoch left behind: mean training loss, validation accuracy, learning rate, time."""

    epoch: int
    train_loss: float | None
    val_acc: float | None
    lr: float
    seconds: float | None = None
    steps: int | None = None  # optimizer steps taken by the end of this epoch


class EpochRecorder(Callback):
    """Collects one :class:`EpochRecord` per epoch and hands each to ``on_record`` at once.

    The record is made at the end of the epoch's validation, before Lightning writes
    ``last.ckpt`` for that epoch, so a run killed at any point has stored every epoch its
    checkpoint covers. The training loss is the example-weighted mean over the epoch's batches,
    accumulated here (Lightning's own epoch mean is not reduced until after validation).
    """

    def __init__(self, on_record: Callable[[EpochRecord], None] | None = None) -> None:
        self.records: list[EpochRecord] = []
        self.on_record = on_record
        self._loss_sum, self._examples, self._start = 0.0, 0, time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loss_sum, self._examples, self._start = 0.0, 0, time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        size = len(batch[1])
        self._loss_sum += float(loss.detach()) * size
        self._examples += size

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        val = trainer.callback_metrics.get("val_acc")
        record = EpochRecord(
            trainer.current_epoch,
            self._loss_sum / self._examples if self._examples else None,
            float(val) if val is not None else None,
            float(trainer.optimizers[0].param_groups[0]["lr"]),
            time.perf_counter() - self._start,
            trainer.global_step,  # restored from the checkpoint on resume: steps of the run
        )
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)


@dataclass
class TrainResult:
    """Outcome of :func:`fit_and_test`."""

    best_val_acc: float
    best_epoch: int
    test_acc: float
    seconds: float
    epochs: list[EpochRecord] = field(default_factory=list)
    resumed: bool = False
    # Ops that ran without a deterministic kernel (CUDA's, mostly): recorded, not fatal.
    nondeterministic_ops: list[str] = field(default_factory=list)


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # a resumed run's directory


def _readable_checkpoint(path: Path) -> bool:
    """Whether ``path`` holds a loadable checkpoint; a truncated one is renamed ``*.corrupt``."""
    if not path.exists():
        return False
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        path.replace(path.with_suffix(".corrupt"))
        return False
    return True


def fit_and_test(
    module: PaIModule,
    datamodule: TensorDataModule,
    *,
    epochs: int,
    run_dir: Path,
    accelerator: str = "cpu",
    devices: list[int] | None = None,
    precision: str = "32",
    progress: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``epochs`` epochs, keep the best-validation weights and test them.

    Checkpoints (best, and last after every epoch) live in ``run_dir``; when a readable
    ``last.ckpt`` is already there the run resumes from it (an unreadable one, from a process
    killed while writing it, is set aside and the run starts over). ``on_epoch`` receives each
    epoch's record as the epoch ends; ``callbacks`` are extra Lightning callbacks (the harness
    overhead benchmark times training steps with one). Data sets without test labels (Tiny
    ImageNet) report the best validation accuracy as their test accuracy, as the paper does.

    Deterministic algorithms are asked for in warn mode: an op without a deterministic kernel
    (on a GPU) is named in ``nondeterministic_ops`` instead of failing the run. ``devices``:
    the GPU indices to train on (default: one device); ``precision``: Lightning's.
    """
    _quiet_lightning()
    run_dir.mkdir(parents=True, exist_ok=True)
    best = ModelCheckpoint(
        dirpath=run_dir, filename="best", monitor="val_acc", mode="max", save_last=True
    )
    recorder = EpochRecorder(on_epoch)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=devices or 1,
        precision=precision,
        logger=False,
        callbacks=[best, recorder, *callbacks],
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic="warn",
        default_root_dir=run_dir,
    )
    last = run_dir / "last.ckpt"
    resumed = _readable_checkpoint(last)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        trainer.fit(
            module,
            datamodule=datamodule,
            ckpt_path=str(last) if resumed else None,
            weights_only=True,
        )
    seconds = time.perf_counter() - start
    nondeterministic = nondeterministic_ops(str(w.message) for w in caught)
    best_path = best.best_model_path
    state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    if datamodule.has_test_labels:
        tested = trainer.test(module, datamodule=datamodule, verbose=False)
        test_acc = float(tested[0]["test_acc"])
    else:
        test_acc = float(best.best_model_score)
    best_epoch = (
        max(recorder.records, key=lambda r: r.val_acc or -1.0).epoch if recorder.records else -1
    )
    return TrainResult(
        best_val_acc=float(best.best_model_score),
        best_epoch=best_epoch,
        test_acc=test_acc,
        seconds=seconds,
        epochs=recorder.records,
        resumed=resumed,
        nondeterministic_ops=nondeterministic,
    )


_NONDETERMINISTIC = re.compile(r"^(\S+) does not have a deterministic implementation")


def nondeterministic_ops(messages: Iterable[str]) -> list[str]:
    """The ops named by torch's warn-only determinism warnings, sorted, each once."""
    found = {m.group(1) for m in map(_NONDETERMINISTIC.match, messages) if m is not None}
    return sorted(found)
