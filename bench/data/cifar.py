"""CIFAR-10 and CIFAR-100 from the standard python-pickle folders, held as tensors.

The layout, file names, md5 sums and archive URL are torchvision's (``CIFAR10``/``CIFAR100``
class attributes): ``cifar-10-batches-py/`` or ``cifar-100-python/`` under the data root. Every
file's md5 is checked with torchvision's ``check_integrity`` before it is unpickled, and the
archive is downloaded (torchvision's ``download_and_extract_archive``) only when the run passes
``--download``. The pickles are read here, one file at a time, so that a missing, damaged or
malformed file is a one-line error naming that file. The images are converted once to
normalised float tensors; training batches get FORCE's crop + flip (see ``bench.data.augment``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets import cifar as tv_cifar
from torchvision.datasets.utils import download_and_extract_archive

from bench.data.augment import CIFAR10_NORM, CIFAR100_NORM
from bench.data.base import Splits
from bench.data.common import (
    ImageDataModule,
    candidate_dirs,
    corrupt_file_error,
    locate,
    missing_data_error,
    one_line,
)
from bench.data.registry import register
from bench.errors import BenchError

PIXELS = 3 * 32 * 32  # one row of a batch's ``data``: 1024 red, then green, then blue values


class CIFARDataModule(ImageDataModule):
    """Shared CIFAR loader; subclasses name the torchvision class and the constants."""

    input_shape = (3, 32, 32)
    augmented = True
    torchvision_class: type[CIFAR10] = CIFAR10

    def _files(self) -> list[tuple[str, str]]:
        """``(file name, md5)`` of every file of the folder: batches, test batch, meta."""
        tv = self.torchvision_class
        return [*tv.train_list, *tv.test_list, (tv.meta["filename"], tv.meta["md5"])]

    def _missing(self, directory: Path) -> list[str]:
        tv = self.torchvision_class
        if directory.name != tv.base_folder:
            return [f"{tv.base_folder}/"]
        return [name for name, _ in self._files() if not (directory / name).is_file()]

    def _root(self) -> Path:
        """The directory that holds (or, with --download, will hold) the pickle folder."""
        tv = self.torchvision_class
        candidates = candidate_dirs(self.data_dir, tv.base_folder)
        found, notes = locate(candidates, self._missing)
        if found is not None:
            return found.parent
        if self.download:
            return candidates[0].parent
        raise missing_data_error(
            self.name,
            notes,
            f"rerun with --download (fetches {tv.filename} from {tv.url}), or download that "
            f"archive and unpack it into {candidates[0].parent} so that "
            f"{candidates[0].parent / tv.base_folder} exists",
        )

    def _how(self, root: Path) -> str:
        tv = self.torchvision_class
        return (
            f"delete {root / tv.base_folder} and rerun with --download, or unpack a fresh "
            f"{tv.filename} from {tv.url} into {root}"
        )

    def _first_bad_file(self, folder: Path) -> tuple[Path, str] | None:
        """The first file that is missing or whose md5 differs from the real archive's."""
        for name, md5 in self._files():
            path = folder / name
            if not path.is_file():
                return path, "missing"
            if not tv_cifar.check_integrity(str(path), md5):
                return path, f"its md5 is not {md5}, the md5 of that file in the real archive"
        return None

    def load_pixels(self) -> Splits:
        tv, root = self.torchvision_class, self._root()
        folder = root / tv.base_folder
        bad = self._first_bad_file(folder)
        if bad is not None and self.download:  # as torchvision: fetch when anything is bad
            try:
                download_and_extract_archive(
                    tv.url, str(root), filename=tv.filename, md5=tv.tgz_md5
                )
            except (RuntimeError, OSError) as error:  # URLError is an OSError
                raise BenchError(
                    f"{self.name}: downloading {tv.url} into {root} failed ({one_line(error)}); "
                    f"download {tv.filename} by hand and unpack it into {root}"
                ) from error
            bad = self._first_bad_file(folder)
        if bad is not None:
            path, problem = bad
            if problem == "missing":
                raise BenchError(f"{self.name}: {path} is missing ({self._how(root)})")
            raise corrupt_file_error(path, f"{problem}: truncated or damaged", self._how(root))
        x_train, y_train = self._read(folder, tv.train_list, root)
        x_test, y_test = self._read(folder, tv.test_list, root)
        return Splits(x_train, y_train, x_test, y_test)

    def _read(
        self, folder: Path, files: list[list[str]], root: Path
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batches ``files`` of ``folder`` as uint8 images and labels."""
        images, labels = [], []
        for name, _ in files:
            data, targets = self._read_batch(folder / name, root)
            images.append(data)
            labels.extend(targets)
        pixels = torch.from_numpy(np.concatenate(images).reshape(-1, 3, 32, 32))  # NCHW
        return pixels, torch.tensor(labels, dtype=torch.long)

    def _read_batch(self, path: Path, root: Path) -> tuple[np.ndarray, list[int]]:
        """One pickled batch: ``data`` (N, 3072) uint8 and ``labels`` or ``fine_labels``."""
        how = self._how(root)
        try:
            with path.open("rb") as f:
                entry: Any = pickle.load(f, encoding="latin1")  # Python 2 pickles, as torchvision
        except OSError as error:
            raise BenchError(f"cannot read data file {path}: {one_line(error)}") from error
        except Exception as error:  # EOFError, UnpicklingError, ...: whatever garbage gives
            cause = f"{type(error).__name__}: {error}"
            truncated = isinstance(error, EOFError) or "truncated" in str(error)
            what = "truncated pickle" if truncated else "not a CIFAR pickle"
            problem = f"{what} ({cause})"
            raise corrupt_file_error(path, problem, how) from error
        label_key = "labels" if isinstance(entry, dict) and "labels" in entry else "fine_labels"
        if not isinstance(entry, dict) or "data" not in entry or label_key not in entry:
            keys = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
            problem = f"not a CIFAR batch (expected keys 'data' and labels, found {keys})"
            raise corrupt_file_error(path, problem, how)
        data, targets = entry["data"], list(entry[label_key])
        if not (
            isinstance(data, np.ndarray)
            and data.dtype == np.uint8
            and data.ndim == 2
            and data.shape[1] == PIXELS
        ):
            shape = getattr(data, "shape", type(data).__name__)
            problem = f"'data' is {getattr(data, 'dtype', '?')} {shape}, not (N, {PIXELS}) uint8"
            raise corrupt_file_error(path, problem, how)
        if len(targets) != len(data):
            problem = f"{len(data)} images but {len(targets)} {label_key}"
            raise corrupt_file_error(path, problem, how)
        return data, targets


@register(
    "cifar10",
    default_arch="resnet18",
    batches_per_step=1,  # Table 3
    description="torchvision's CIFAR-10 over cifar-10-batches-py/ in --data-dir (--download)",
)
class CIFAR10DataModule(CIFARDataModule):
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images, 10 classes."""

    name = "cifar10"
    num_classes = 10
    normalization = CIFAR10_NORM
    torchvision_class = CIFAR10


@register(
    "cifar100",
    default_arch="resnet18",
    batches_per_step=10,  # Table 3
    description="torchvision's CIFAR-100 over cifar-100-python/ in --data-dir (--download)",
)
class CIFAR100DataModule(CIFARDataModule):
    """CIFAR-100: 50,000 + 10,000 colour 32x32 images, 100 fine classes."""

    name = "cifar100"
    num_classes = 100
    normalization = CIFAR100_NORM
    torchvision_class = CIFAR100
