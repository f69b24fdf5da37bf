"""The LightningModule of a stack: N canonical networks trained as one batched model.

Parameters and buffers are stacked with ``torch.func.stack_module_state`` and the forward is
``vmap`` over ``functional_call``, so model ``i`` sees only its own batch, weights and
BatchNorm statistics (``vmap`` updates each model's running statistics in place). The loss is
the sum of the models' own mean losses, so each model's gradient is exactly its own; Adam and
SGD are element-wise, so each model's update is its own update too.

Per model, the module keeps what an unstacked run keeps: the mean training loss and the
validation accuracy of each epoch, and the weights of its best validation epoch. A model whose
loss turns non-finite is dropped: it leaves the summed loss and everything recorded, and the
others go on.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from bench.presets import TrainingPreset
from bench.training import EpochRecord


@dataclass
class ModelState:
    """Where one model of the stack stands."""

    best_val: float = -1.0
    best_epoch: int = -1
    best: dict[str, Tensor] | None = None  # its parameters and buffers at best_epoch (CPU)
    failed: str | None = None  # why it was dropped from the stack


def _key(name: str) -> str:
    """A module attribute name for a dotted state name."""
    return name.replace(".", "__")


class StackedModule(L.LightningModule):
    """N networks of one structure, trained in lockstep; ``batch`` is a list of N (x, y)."""

    def __init__(
        self,
        networks: list[nn.Module],
        preset: TrainingPreset,
        epochs: int,
        lr: float,
        start_epoch: int = 0,
        on_epoch: Callable[[int, EpochRecord], None] | None = None,
    ) -> None:
        super().__init__()
        params, buffers = stack_module_state(networks)
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterList(nn.Parameter(params[n].detach()) for n in params)
        for name, value in buffers.items():
            self.register_buffer(_key(name), value)
        # The structure functional_call fills in; kept off the module so Lightning never moves it.
        self._structure = [copy.deepcopy(networks[0]).to("meta")]
        self.size = len(networks)
        self.preset, self.epochs, self.lr, self.start_epoch = preset, epochs, lr, start_epoch
        self.on_epoch = on_epoch
        self.states = [ModelState() for _ in networks]
        self.step_losses: Tensor | None = None  # the last step's loss per model (for tests)
        self._reset_epoch()

    # Stacked state ----------------------------------------------------------------------------
    def params(self) -> dict[str, Tensor]:
        return dict(zip(self.param_names, self.stacked))

    def buffers_(self) -> dict[str, Tensor]:
        return {name: getattr(self, _key(name)) for name in self.buffer_names}

    def model_state(self, i: int) -> dict[str, Tensor]:
        """Model ``i``'s parameters and buffers, detached copies on the CPU."""
        state = {n: p[i] for n, p in self.params().items()} | {
            n: b[i] for n, b in self.buffers_().items()
        }
        return {n: t.detach().to("cpu", copy=True) for n, t in state.items()}

    def load_model_state(self, i: int, state: dict[str, Tensor]) -> None:
        """Set model ``i``'s slice of every stacked tensor from ``state``."""
        with torch.no_grad():
            for name, tensor in (self.params() | self.buffers_()).items():
                tensor[i].copy_(state[name])

    def alive(self) -> Tensor:
        return torch.tensor([s.failed is None for s in self.states], device=self.device)

    # Forward and steps ------------------------------------------------------------------------
    def forward(self, x: Tensor, shared_input: bool = False) -> Tensor:
        """Logits ``[N, B, C]`` of ``x`` (``[N, B, ...]``, or ``[B, ...]`` when shared)."""
        structure = self._structure[0]
        structure.train(self.training)  # BatchNorm: batch statistics only while training

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], xs: Tensor) -> Tensor:
            return functional_call(structure, (params, buffers), (xs,))

        return vmap(one, in_dims=(0, 0, None if shared_input else 0))(
            self.params(), self.buffers_(), x
        )

    def _reset_epoch(self) -> None:
        self._loss_sum = torch.zeros(self.size, dtype=torch.float64)
        self._examples = 0
        self._batches = 0
        self._correct = torch.zeros(self.size, dtype=torch.float64)
        self._seen = 0
        self._start = time.perf_counter()

    def on_train_epoch_start(self) -> None:
        self._reset_epoch()
        self._loss_sum = self._loss_sum.to(self.device)
        self._correct = self._correct.to(self.device)

    def training_step(self, batch: list[tuple[Tensor, Tensor]], batch_idx: int) -> Tensor:
        x = torch.stack([xy[0] for xy in batch])
        y = torch.stack([xy[1] for xy in batch])
        logits = self(x)
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        losses = losses.view(self.size, -1).mean(dim=1)
        self.step_losses = losses.detach()
        self._loss_sum += losses.detach().double() * y.shape[1]
        self._examples += y.shape[1]
        self._batches += 1
        # Dropped models leave the loss (a where, not a product: their loss may be NaN).
        return torch.where(self.alive(), losses, torch.zeros_like(losses)).sum()

    def validation_step(self, batch: list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        x = torch.stack([xy[0] for xy in batch])
        y = torch.stack([xy[1] for xy in batch])
        # Exact per-model counts: torchmetrics' accuracy has no per-model reduction over batches.
        self._correct += (self(x).argmax(dim=-1) == y).sum(dim=1).double()
        self._seen += y.shape[1]

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        epoch = self.start_epoch + self.current_epoch
        losses = (self._loss_sum / max(self._examples, 1)).tolist()
        accuracy = (self._correct / max(self._seen, 1)).tolist()
        lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        seconds = time.perf_counter() - self._start
        for i, state in enumerate(self.states):
            if state.failed is not None:
                continue
            if not torch.isfinite(torch.tensor(losses[i])):
                state.failed = f"training loss is not finite (epoch {epoch})"
                continue
            if accuracy[i] > state.best_val:  # strictly: a tie keeps the earlier epoch
                state.best_val, state.best_epoch = accuracy[i], epoch
                state.best = self.model_state(i)
            if self.on_epoch is not None:
                steps = (epoch + 1) * self._batches  # every epoch has the same batches
                self.on_epoch(i, EpochRecord(epoch, losses[i], accuracy[i], lr, seconds, steps))
        self._correct.zero_()
        self._seen = 0

    def test_step(self, batch: list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_start(self) -> None:
        self._correct = torch.zeros(self.size, dtype=torch.float64, device=self.device)
        self._seen = 0

    def test_accuracy(self) -> list[float]:
        """Per-model accuracy of the last ``trainer.test``."""
        return (self._correct / max(self._seen, 1)).tolist()

    # Optimisation -----------------------------------------------------------------------------
    def configure_optimizers(self):
        p = self.preset
        if p.optimizer == "adam":
            return torch.optim.Adam(self.stacked, lr=self.lr, weight_decay=p.weight_decay)
        # A resumed stack starts at start_epoch: the milestones already passed set the lr.
        milestones = p.milestones(self.epochs)
        passed = sum(1 for m in milestones if m <= self.start_epoch)
        optimizer = torch.optim.SGD(
            self.stacked,
            lr=self.lr * p.decay_factor**passed,
            momentum=p.momentum,
            weight_decay=p.weight_decay,
        )
        ahead = [m - self.start_epoch for m in milestones if m > self.start_epoch]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, ahead, gamma=p.decay_factor)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
