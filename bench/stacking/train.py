"""Fit, checkpoint, resume and test a stack: the stacked counterpart of ``fit_and_test``.

Each model keeps its own checkpoint, ``stack.pt`` in its own run directory, written after every
epoch: its parameters, buffers, its slice of the optimiser state, its best-validation weights.
A killed stack resumes from them (every member must stand at the same epoch: the scheduler
groups runs by the epoch their checkpoints reached), and the epoch rows of the run are the
ones an unstacked run writes.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import CombinedLoader
from torch import Tensor, nn

from bench.data.base import TensorDataModule
from bench.presets import TrainingPreset
from bench.stacking.canonical import write_back
from bench.stacking.module import ModelState, StackedModule
from bench.training import EpochRecord, TrainResult, _quiet_lightning, nondeterministic_ops

CHECKPOINT = "stack.pt"


@dataclass
class Member:
    """One run in a stack: its allocated network, the same network in canonical form, its data,
    its run directory, and where its epoch records go."""

    model: nn.Module
    network: nn.Module
    datamodule: TensorDataModule
    run_dir: Path
    on_epoch: Callable[[EpochRecord], None] | None = None


@dataclass
class MemberResult:
    """A member's training result, or why it was dropped from the stack."""

    result: TrainResult | None
    failed: str | None = None


def checkpoint_epoch(run_dir: Path) -> int:
    """The last epoch a member's ``stack.pt`` holds (-1: none, or unreadable)."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return -1
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:
        path.replace(path.with_suffix(".corrupt"))
        return -1


def _optimizer_slice(optimizer: torch.optim.Optimizer, names: list[str], i: int) -> dict:
    """Model ``i``'s optimiser state: per parameter, the entries shaped like the stacked
    parameter (moments, momentum) sliced to ``i``, the others (Adam's step count) whole."""
    state: dict[str, dict[str, dict[str, Tensor]]] = {}
    for name, param in zip(names, optimizer.param_groups[0]["params"]):
        own, shared = {}, {}
        for key, value in optimizer.state.get(param, {}).items():
            if value.shape == param.shape:
                own[key] = value[i].detach().cpu()
            else:
                shared[key] = value.detach().cpu()
        state[name] = {"own": own, "shared": shared}
    return state


class StackCheckpoint(Callback):
    """Write every live member's ``stack.pt`` at the end of each epoch (atomically)."""

    def __init__(self, run_dirs: Sequence[Path]) -> None:
        self.run_dirs = list(run_dirs)

    def on_train_epoch_end(self, trainer: L.Trainer, module: StackedModule) -> None:
        epoch = module.start_epoch + module.current_epoch
        optimizer = trainer.optimizers[0]
        for i, (state, run_dir) in enumerate(zip(module.states, self.run_dirs)):
            if state.failed is not None:
                continue
            payload = {
                "epoch": epoch,
                "state": module.model_state(i),
                "optimizer": _optimizer_slice(optimizer, module.param_names, i),
                "best": state.best,
                "best_val": state.best_val,
                "best_epoch": state.best_epoch,
            }
            tmp = run_dir / (CHECKPOINT + ".tmp")
            torch.save(payload, tmp)
            os.replace(tmp, run_dir / CHECKPOINT)


class _RestoreOptimizer(Callback):
    """Stack the members' saved optimiser slices back once the optimiser exists."""

    def __init__(self, saved: list[dict]) -> None:
        self.saved = saved

    def on_train_start(self, trainer: L.Trainer, module: StackedModule) -> None:
        optimizer = trainer.optimizers[0]
        for name, param in zip(module.param_names, optimizer.param_groups[0]["params"]):
            first = self.saved[0][name]
            state = {k: v.clone() for k, v in first["shared"].items()}
            for key in first["own"]:
                state[key] = torch.stack([s[name]["own"][key] for s in self.saved])
            optimizer.state[param] = {k: v.to(param.device) for k, v in state.items()}


def _resume(module: StackedModule, members: Sequence[Member]) -> list[dict] | None:
    """Load the members' checkpoints into ``module``; their optimiser slices, or None."""
    saved = [
        torch.load(m.run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
        if (m.run_dir / CHECKPOINT).exists()
        else None
        for m in members
    ]
    if all(s is None for s in saved):
        return None
    epochs = {s["epoch"] if s else -1 for s in saved}
    if len(epochs) != 1:
        raise ValueError(f"members of a stack stand at different epochs {sorted(epochs)}")
    for i, s in enumerate(saved):
        module.load_model_state(i, s["state"])
        module.states[i] = ModelState(s["best_val"], s["best_epoch"], s["best"])
    module.start_epoch = epochs.pop() + 1
    return [s["optimizer"] for s in saved]


def fit_stack(
    members: Sequence[Member],
    preset: TrainingPreset,
    *,
    epochs: int,
    lr: float,
    accelerator: str = "cpu",
    devices: list[int] | None = None,
    precision: str = "32",
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
) -> list[MemberResult]:
    """Train the members together for ``epochs`` epochs; test each at its best epoch.

    Every member's trained (best-validation) values are written back into its own ``model``.
    ``train_seconds`` of each result is its share of the stack's wall time.
    """
    _quiet_lightning()
    for member in members:
        member.run_dir.mkdir(parents=True, exist_ok=True)

    def record(i: int, rec: EpochRecord) -> None:
        records[i].append(rec)
        if members[i].on_epoch is not None:
            members[i].on_epoch(rec)

    records: list[list[EpochRecord]] = [[] for _ in members]
    module = StackedModule([m.network for m in members], preset, epochs, lr, on_epoch=record)
    saved = _resume(module, members)
    resumed = saved is not None
    extra = [_RestoreOptimizer(saved)] if saved else []
    trainer = L.Trainer(
        max_epochs=epochs - module.start_epoch,
        accelerator=accelerator,
        devices=devices or 1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        callbacks=[StackCheckpoint([m.run_dir for m in members]), *extra, *callbacks],
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic="warn",
        default_root_dir=members[0].run_dir,
    )

    def loaders(split: str) -> CombinedLoader:
        return CombinedLoader([getattr(m.datamodule, f"{split}_dataloader")() for m in members])

    train = [m.datamodule.train_dataloader() for m in members]
    for loader in train:  # a resumed stack draws the batch order its finished epochs drew
        for _ in range(module.start_epoch):
            for _batch in loader:
                pass
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        if module.start_epoch < epochs:
            trainer.fit(
                module, train_dataloaders=CombinedLoader(train), val_dataloaders=loaders("val")
            )
        seconds = time.perf_counter() - start
        for i, state in enumerate(module.states):
            if state.failed is None and state.best is not None:
                module.load_model_state(i, state.best)
        tested = members[0].datamodule.has_test_labels
        if tested:
            trainer.test(module, dataloaders=loaders("test"), verbose=False)
    nondeterministic = nondeterministic_ops(str(w.message) for w in caught)
    accuracy = module.test_accuracy() if tested else None
    results: list[MemberResult] = []
    for i, (member, state) in enumerate(zip(members, module.states)):
        if state.failed is not None or state.best is None:
            results.append(MemberResult(None, state.failed or "no epoch was validated"))
            continue
        member.network.load_state_dict(state.best, strict=False)
        write_back(member.network, member.model)
        results.append(
            MemberResult(
                TrainResult(
                    best_val_acc=state.best_val,
                    best_epoch=state.best_epoch,
                    test_acc=accuracy[i] if accuracy is not None else state.best_val,
                    seconds=seconds / len(members),
                    epochs=records[i],
                    resumed=resumed,
                    nondeterministic_ops=nondeterministic,
                )
            )
        )
    return results
