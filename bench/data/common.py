"""What the file-backed loaders share: where data lives, how a missing set is reported, and a
base class for normalised (optionally augmented) image sets."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bench.data.augment import Normalization, crop_flip
from bench.data.base import Augment, Splits, TensorDataModule
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


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """An exception's message on one line (whitespace runs collapsed), at most ``limit`` chars."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def corrupt_file_error(path: Path, problem: str, how: str) -> BenchError:
    """The one-line error for a data file that exists but cannot be read as what it should be:
    ``corrupt data file <path>: <problem> (<how to fix it>)``."""
    return BenchError(f"corrupt data file {path}: {one_line(problem)} ({how})")


def missing_data_error(name: str, notes: Sequence[str], how: str) -> BenchError:
    """A one-line error naming every place searched and how to get the data."""
    return BenchError(f"{name} data not found; looked in: {'; '.join(notes)}. To get it: {how}")


class ImageDataModule(TensorDataModule):
    """A data set normalised per channel; ``augmented`` sets add FORCE's crop + flip.

    Subclasses implement :meth:`load_pixels` (uint8 images); :meth:`load` normalises them, and
    :meth:`verify` checks the raw pixels without making the (4x larger) float copy.
    """

    normalization: Normalization
    augmented: bool = False

    def augment(self) -> Augment | None:
        return crop_flip(self.normalization) if self.augmented else None

    def load_pixels(self) -> Splits:
        """The splits with ``(N, C, H, W)`` uint8 images, as read from disk."""
        raise NotImplementedError

    def load(self) -> Splits:
        raw = self.load_pixels()
        norm = self.normalization
        return Splits(norm(raw.x_train), raw.y_train, norm(raw.x_test), raw.y_test)

    def verify(self) -> int:
        if type(self).load_pixels is ImageDataModule.load_pixels:  # a subclass with its own load
            return super().verify()
        raw = self.load_pixels()
        self.check(raw)
        return len(raw.y_train)
