"""CIFAR-10 and CIFAR-100 through torchvision's own dataset classes, held as tensors.

torchvision reads the standard python-pickle layout (``cifar-10-batches-py/`` or
``cifar-100-python/`` under the data root) and checks every file's md5; it downloads the
archive only when the run passes ``--download``. The images are converted once to normalised
float tensors; training batches get FORCE's crop + flip (see ``bench.data.augment``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from bench.data.augment import CIFAR10_NORM, CIFAR100_NORM
from bench.data.base import Splits
from bench.data.common import (
    ImageDataModule,
    candidate_dirs,
    locate,
    missing_data_error,
)
from bench.data.registry import register
from bench.errors import BenchError


class CIFARDataModule(ImageDataModule):
    """Shared CIFAR loader; subclasses name the torchvision class and the constants."""

    input_shape = (3, 32, 32)
    augmented = True
    torchvision_class: type[CIFAR10] = CIFAR10

    def _missing(self, directory: Path) -> list[str]:
        tv = self.torchvision_class
        if directory.name != tv.base_folder:
            return [f"{tv.base_folder}/"]
        names = [name for name, _ in tv.train_list + tv.test_list] + [tv.meta["filename"]]
        return [name for name in names if not (directory / name).is_file()]

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

    def load(self) -> Splits:
        tv, root = self.torchvision_class, self._root()
        try:
            train = tv(str(root), train=True, download=self.download)
            test = tv(str(root), train=False, download=False)
        except RuntimeError as error:  # torchvision: missing file or md5 mismatch
            raise BenchError(
                f"{self.name}: {root / tv.base_folder} is incomplete or corrupted ({error}; "
                f"torchvision checks the md5 of every file); delete it and rerun with "
                f"--download, or unpack a fresh {tv.filename} from {tv.url} into {root}"
            ) from error
        except (URLError, OSError) as error:
            raise BenchError(
                f"{self.name}: downloading {tv.url} into {root} failed ({error}); download "
                f"{tv.filename} by hand and unpack it into {root}"
            ) from error
        return Splits(*self._tensors(train), *self._tensors(test))

    def _tensors(self, dataset: CIFAR10) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        return self.normalization(images), torch.tensor(dataset.targets, dtype=torch.long)


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
