"""Fashion-MNIST (60,000 + 10,000 grey 28x28 images, 10 classes) from its IDX files.

Debian's package ``dataset-fashion-mnist`` installs the four gzipped IDX files in
``/usr/share/datasets/fashion-mnist``; they are found there automatically, in
``default_data_root()/fashion-mnist``, or in ``--data-dir``. Plain or gzipped files both work.
No augmentation (the paper trains no model on it); pixels are normalised.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from bench.data.augment import FASHION_MNIST_NORM
from bench.data.base import Splits
from bench.data.common import ImageDataModule, candidate_dirs, locate, missing_data_error
from bench.data.registry import register
from bench.errors import BenchError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
GZIP_MAGIC = b"\x1f\x8b"
# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzipped or not) exactly: magic, big-endian dims, data size.

    The magic number is ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian int32 sizes,
    then the data in row-major order. Anything else raises a BenchError naming the file.
    """
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        raise BenchError(f"{path} is not an IDX file (magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise BenchError(f"{path}: IDX header truncated")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise BenchError(
            f"{path}: IDX dims {shape} need {expected} bytes but the file has {len(raw)}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _require(directory: Path, stem: str) -> Path:
    path = _find(directory, stem)
    assert path is not None, "locate() only returns directories holding every file"
    return path


def _missing(directory: Path) -> list[str]:
    return [f"{stem}[.gz]" for stem in FILES.values() if _find(directory, stem) is None]


@register(
    "fashion-mnist",
    default_arch="resnet18",
    description="IDX files of Debian's dataset-fashion-mnist package, or --data-dir",
)
class FashionMNISTDataModule(ImageDataModule):
    """Fashion-MNIST from IDX files; the official 10,000-image test set is the test split."""

    name = "fashion-mnist"
    input_shape = (1, 28, 28)
    num_classes = 10
    normalization = FASHION_MNIST_NORM

    def load(self) -> Splits:
        candidates = candidate_dirs(self.data_dir, "fashion-mnist", system=[DEBIAN_DIR])
        directory, notes = locate(candidates, _missing)
        if directory is None:
            raise missing_data_error(
                self.name,
                notes,
                "install Debian's package (apt-get install dataset-fashion-mnist; it puts the "
                f"gzipped IDX files in {DEBIAN_DIR}) or pass --data-dir DIR holding "
                f"{', '.join(FILES.values())} (plain or .gz)",
            )
        arrays = {key: read_idx(_require(directory, stem)) for key, stem in FILES.items()}
        for split in ("train", "test"):
            images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
            if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
                raise BenchError(
                    f"{directory}: unexpected IDX shapes {images.shape}, {labels.shape}"
                )
            if len(images) != len(labels):
                raise BenchError(
                    f"{directory}: {len(images)} {split} images but {len(labels)} labels"
                )
            if labels.size and not 0 <= labels.min() <= labels.max() < self.num_classes:
                raise BenchError(f"{directory}: {split} labels outside [0, {self.num_classes})")

        def images(key: str) -> torch.Tensor:
            return self.normalization(torch.from_numpy(arrays[key]).unsqueeze(1))

        def labels(key: str) -> torch.Tensor:
            return torch.from_numpy(arrays[key]).long()

        return Splits(images("x_train"), labels("y_train"), images("x_test"), labels("y_test"))
