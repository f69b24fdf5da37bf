"""In-memory LightningDataModules: every split is a tensor, every draw comes from the run's seed.

Small data sets are held as tensors and batched by indexing (no per-example ``__getitem__`` and
no collate), so data loading is never the bottleneck on a CPU. The training split, the optional
``train_subset``, the 10% validation hold-out (10% of the subset when there is one) and the
loader order all come from ``torch.Generator`` objects seeded from the run seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from bench.config import stream_seed
from bench.errors import BenchError
from bench.presets import VAL_FRACTION

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class Splits:
    """Raw tensors as loaded from disk: images ``(N, C, H, W)`` float, labels ``(N,)`` long."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


class BatchTensorDataset(Dataset):
    """A dataset indexed by a whole list of indices at once, returning a ready batch."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        augment: Augment | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.x, self.y, self.augment, self.generator = x, y, augment, generator

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, device=self.x.device)
        x = self.x[index]
        if self.augment is not None:
            x = self.augment(x, self.generator)
        return x, self.y[index]


class TensorDataModule(L.LightningDataModule):
    """Base class: subclasses implement :meth:`load` and set the class attributes below."""

    name: str = ""
    input_shape: tuple[int, int, int] = (1, 1, 1)
    num_classes: int = 0
    has_test_labels: bool = True

    def __init__(
        self,
        *,
        batch_size: int = 128,
        seed: int = 0,
        train_subset: int | None = None,
        data_dir: str | Path | None = None,
        download: bool = False,
        val_fraction: float = VAL_FRACTION,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.seed = seed
        self.train_subset = train_subset
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.download = download
        self.val_fraction = val_fraction
        self._ready = False

    # Subclasses -------------------------------------------------------------------------------
    def load(self) -> Splits:
        """Read the data set from disk (or memory) as normalised float tensors."""
        raise NotImplementedError

    def augment(self) -> Augment | None:
        """Training-time augmentation applied per batch (None: no augmentation)."""
        return None

    def verify(self) -> int:
        """Read the data set's files once and check them as :meth:`setup` would, without
        keeping anything; returns the number of training examples (before any split).

        Raises the one-line BenchError a run would raise (missing or corrupt files, shapes or
        labels that do not match the declared ones). A subclass whose :meth:`load` is costly may
        check something cheaper that finds the same errors (image sets skip normalisation).
        """
        splits = self.load()
        self.check(splits)
        return len(splits.y_train)

    # Splits -----------------------------------------------------------------------------------
    def generator(self, stream: str) -> torch.Generator:
        """An independent generator per use (split, order, augmentation, allocation batches),
        seeded by the run's one seed-stream rule (:func:`bench.config.stream_seed`)."""
        return torch.Generator().manual_seed(stream_seed(self.seed, f"data/{stream}"))

    def setup(self, stage: str | None = None) -> None:
        """Load once, then split the training set into training and validation examples.

        The training split is shuffled with the ``split`` generator and its first ``N``
        examples are used, ``N = train_subset`` or, without one, the whole split. Of those,
        the first ``round(val_fraction * N)`` are the validation split and the rest are
        trained on: ``--train-subset 200`` on digits trains on 180 and validates on 20, and
        without ``train_subset`` the split is 10% of the whole training set, as it always was.
        """
        if self._ready:
            return
        splits = self.load()
        self.check(splits)
        order = torch.randperm(len(splits.y_train), generator=self.generator("split"))
        used = self.used_examples(len(order))
        n_val = round(self.val_fraction * used)
        val_idx, train_idx = order[:n_val], order[n_val:used]
        self.x_train, self.y_train = splits.x_train[train_idx], splits.y_train[train_idx]
        self.x_val, self.y_val = splits.x_train[val_idx], splits.y_train[val_idx]
        self.x_test, self.y_test = splits.x_test, splits.y_test
        self._ready = True

    def used_examples(self, available: int) -> int:
        """How many of the ``available`` training examples a run uses (train plus validation):
        ``train_subset`` when given, else all; a one-line BenchError when it cannot be split."""
        if self.train_subset is None:
            return available
        subset = self.train_subset
        if not 0 < subset <= available:
            raise BenchError(
                f"train_subset {subset} is outside [1, {available}] for {self.name} (its "
                f"training split has {available} examples)"
            )
        n_val = round(self.val_fraction * subset)
        if subset - n_val < 1 or (self.val_fraction > 0 and n_val < 1):
            raise BenchError(
                f"train_subset {subset} is too small for {self.name}: holding out "
                f"round({self.val_fraction:g} * {subset}) = {n_val} for validation leaves "
                f"{subset - n_val} to train on (need at least one of each)"
            )
        return subset

    def check(self, splits: Splits) -> None:
        """Raise a one-line BenchError when ``splits`` do not match the declared shape/classes.

        A plugin data set that declares ``input_shape`` or ``num_classes`` wrongly fails here,
        with its name, instead of deep inside a model's forward or the loss.
        """
        for split, x, y in (
            ("train", splits.x_train, splits.y_train),
            ("test", splits.x_test, splits.y_test),
        ):
            if tuple(x.shape[1:]) != tuple(self.input_shape):
                raise BenchError(
                    f"data set {self.name!r}: {split} images have shape {tuple(x.shape[1:])}, "
                    f"not the declared input_shape {tuple(self.input_shape)}"
                )
            if y.ndim != 1 or len(y) != len(x):
                raise BenchError(
                    f"data set {self.name!r}: {split} labels must be one per image "
                    f"({len(x)}), got shape {tuple(y.shape)}"
                )
            if len(y) and not 0 <= int(y.min()) <= int(y.max()) < self.num_classes:
                raise BenchError(
                    f"data set {self.name!r}: {split} labels outside [0, {self.num_classes}) "
                    f"(min {int(y.min())}, max {int(y.max())})"
                )

    def to_device(self, device: torch.device | str) -> None:
        """Move every split to ``device`` once (after :meth:`setup`): batches are then indexed
        on the device and never copied per step. Augmentation draws its offsets from the run's
        generator on the CPU (the same draws on every device) and gathers on the device."""
        device = torch.device(device)
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            setattr(self, name, getattr(self, name).to(device))

    # Loaders ----------------------------------------------------------------------------------
    def _loader(
        self, dataset: Dataset, shuffle: bool, generator: torch.Generator | None
    ) -> DataLoader:
        sampler = (
            RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        )
        batches = BatchSampler(sampler, self.batch_size, drop_last=False)
        return DataLoader(dataset, sampler=batches, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        augment = self.generator("augment")
        dataset = BatchTensorDataset(self.x_train, self.y_train, self.augment(), augment)
        return self._loader(dataset, True, self.generator("order"))

    def val_dataloader(self) -> DataLoader:
        return self._loader(BatchTensorDataset(self.x_val, self.y_val), False, None)

    def test_dataloader(self) -> DataLoader:
        if not self.has_test_labels:
            return self.val_dataloader()
        return self._loader(BatchTensorDataset(self.x_test, self.y_test), False, None)

    def allocation_batches(self, batch_size: int | None = None) -> Callable[[], Iterator[tuple]]:
        """A callable giving an endless stream of random augmented training batches.

        Every call continues one generator seeded from the run seed, so the batches a pruning
        method sees are a deterministic function of the seed (and fresh at every call, as the
        iterative methods' per-step batches are).
        """
        self.setup()
        size = batch_size or self.batch_size
        order_gen = self.generator("allocation-order")
        aug_gen = self.generator("allocation-augment")
        augment = self.augment()

        def stream() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            while True:
                index = torch.randint(len(self.y_train), (size,), generator=order_gen)
                x = self.x_train[index]
                yield (augment(x, aug_gen) if augment else x), self.y_train[index]

        return stream
