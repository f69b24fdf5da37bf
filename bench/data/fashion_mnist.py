"""Fashion-MNIST (60,000 + 10,000 grey 28x28 images, 10 classes) from its IDX files.

Debian's package ``dataset-fashion-mnist`` installs the four gzipped IDX files in
``/usr/share/datasets/fashion-mnist``; they are found there automatically, in
``default_data_root()/fashion-mnist``, or in ``--data-dir``. Plain or gzipped files both work.
No augmentation (the paper trains no model on it); pixels are normalised.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from bench.data.augment import FASHION_MNIST_NORM
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


REFETCH = (
    "replace it with a fresh copy (apt-get install --reinstall dataset-fashion-mnist, or the file "
    "from https://github.com/zalandoresearch/fashion-mnist) or remove it"
)


def read_idx(path: Path, how: str = REFETCH) -> np.ndarray:
    """Parse one IDX file (gzipped or not) exactly: magic, big-endian dims, data size.

    The magic number is ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian int32 sizes,
    then the data in row-major order. A file that cannot be read, a truncated or corrupt gzip
    stream and anything that is not exactly that layout raise a one-line BenchError naming the
    file (``corrupt data file <path>: <what is wrong> (<how>)``).
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise BenchError(f"cannot read data file {path}: {one_line(error)}") from error
    gz = raw[:2] == GZIP_MAGIC
    if gz:
        try:
            raw = gzip.decompress(raw)
        except EOFError as error:
            problem = "truncated gzip stream (it ends before its end-of-stream marker)"
            raise corrupt_file_error(path, problem, how) from error
        except (OSError, zlib.error) as error:  # gzip.BadGzipFile is an OSError (CRC, header)
            raise corrupt_file_error(path, f"corrupt gzip stream ({error})", how) from error
    content = "IDX data (after gunzip)" if gz else "IDX file"
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        problem = f"not an IDX file (magic number {raw[:4].hex() or 'empty'})"
        raise corrupt_file_error(path, problem, how)
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise corrupt_file_error(path, f"IDX header truncated ({len(raw)} bytes)", how)
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes after the"
        raise corrupt_file_error(
            path,
            f"{what} {content}: dims {shape} need {expected} bytes but the "
            f"{'data' if gz else 'file'} has {len(raw)}",
            how,
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

    def load_pixels(self) -> Splits:
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
        paths = {key: _require(directory, stem) for key, stem in FILES.items()}
        arrays = {key: read_idx(path) for key, path in paths.items()}
        for split in ("train", "test"):
            images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
            if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
                problem = f"IDX {images.dtype} dims {images.shape}, not (N, 28, 28) uint8 images"
                raise corrupt_file_error(paths[f"x_{split}"], problem, REFETCH)
            if labels.ndim != 1:
                problem = f"IDX dims {labels.shape}, not (N,) labels"
                raise corrupt_file_error(paths[f"y_{split}"], problem, REFETCH)
            if len(images) != len(labels):
                raise BenchError(
                    f"fashion-mnist {split} files disagree: {paths[f'x_{split}']} holds "
                    f"{len(images)} images but {paths[f'y_{split}']} holds {len(labels)} labels "
                    "(replace both with fresh copies, e.g. apt-get install --reinstall "
                    "dataset-fashion-mnist, or remove them)"
                )
            if labels.size and not 0 <= labels.min() <= labels.max() < self.num_classes:
                problem = (
                    f"labels outside [0, {self.num_classes}) (min {labels.min()}, "
                    f"max {labels.max()})"
                )
                raise corrupt_file_error(paths[f"y_{split}"], problem, REFETCH)

        def images(key: str) -> torch.Tensor:
            return torch.from_numpy(arrays[key]).unsqueeze(1)

        def labels(key: str) -> torch.Tensor:
            return torch.from_numpy(arrays[key]).long()

        return Splits(images("x_train"), labels("y_train"), images("x_test"), labels("y_test"))
