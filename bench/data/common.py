"""What the file-backed loaders share: where data lives, how a missing set is reported, and a
base class for normalised (optionally augmented) image sets."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bench.data.augment import Normalization, crop_flip
from bench.data.base import Augment, TensorDataModule
from bench.errors import BenchError

DATA_ENV = "PAIBENCH_DATA_DIR"
DEFAULT_DATA_ROOT = Path("~/.cache/paibench/data")


def default_data_root() -> Path:
    """Where data sets live when ``--data-dir`` is not given (``$PAIBENCH_DATA_DIR`` wins)."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT).expanduser()


def candidate_dirs(
    data_dir: str | Path | None, folder: str, system: Iterable[Path] = ()
) -> list[Path]:
    """Directories that may hold a data set's files, in search order.

    With ``data_dir`` only that directory is searched (``data_dir/folder``, or ``data_dir``
    itself when the files sit directly in it); without it, ``default_data_root()/folder`` and
    then the system locations (e.g. where a Debian package installs the set).
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [root] if root.name == folder else [root / folder, root]
    return [default_data_root() / folder, *system]


MissingFn = Callable[[Path], list[str]]


def locate(candidates: Sequence[Path], missing: MissingFn) -> tuple[Path | None, list[str]]:
    """The first candidate with nothing ``missing``, and a note per directory searched."""
    notes: list[str] = []
    for directory in candidates:
        if not directory.is_dir():
            notes.append(f"{directory} (does not exist)")
            continue
        lacking = missing(directory)
        if not lacking:
            return directory, notes
        notes.append(f"{directory} (missing {', '.join(lacking)})")
    return None, notes


def missing_data_error(name: str, notes: Sequence[str], how: str) -> BenchError:
    """A one-line error naming every place searched and how to get the data."""
    return BenchError(f"{name} data not found; looked in: {'; '.join(notes)}. To get it: {how}")


class ImageDataModule(TensorDataModule):
    """A data set normalised per channel; ``augmented`` sets add FORCE's crop + flip."""

    normalization: Normalization
    augmented: bool = False

    def augment(self) -> Augment | None:
        return crop_flip(self.normalization) if self.augmented else None
