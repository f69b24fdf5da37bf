"""Tiny ImageNet (100,000 training + 10,000 validation colour 64x64 images, 200 classes).

Reads the standard ``tiny-imagenet-200/`` tree: ``wnids.txt``, ``train/<wnid>/images/*.JPEG``
and ``val/images`` with ``val/val_annotations.txt``. The test split has no labels, so, as the
paper does (appendix E.5) and as FORCE's code does, the model trains on the whole training set,
the official validation set is the validation split (``val_fraction`` does not apply), and the
reported test accuracy is the best validation accuracy (``has_test_labels = False``).

Class indices follow the sorted wnids, as torchvision's ``ImageFolder`` (used by FORCE) gives
them. Decoding 110,000 JPEGs takes a while, so the decoded uint8 images are cached once in the
data directory, keyed by a fingerprint of the file listing.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.data.augment import TINY_IMAGENET_NORM
from bench.data.base import Splits
from bench.data.common import (
    ImageDataModule,
    candidate_dirs,
    corrupt_file_error,
    default_data_root,
    locate,
    missing_data_error,
    one_line,
)
from bench.data.registry import register
from bench.errors import BenchError

FOLDER = "tiny-imagenet-200"
ARCHIVE = "tiny-imagenet-200.zip"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
SIZE = 64
CACHE_VERSION = 1
REQUIRED = ("wnids.txt", "train/", "val/images/", "val/val_annotations.txt")
IMAGE_SUFFIXES = {".jpeg", ".jpg"}


def _missing(directory: Path) -> list[str]:
    return [name for name in REQUIRED if not (directory / name).exists()]


@dataclass
class Listing:
    """Every image path of the tree with its class index, in a fixed order."""

    wnids: list[str]
    train: list[tuple[Path, int]]
    val: list[tuple[Path, int]]

    def fingerprint(self, root: Path) -> str:
        """A hash of the relative paths and labels: changes when the tree does."""
        digest = hashlib.sha256(f"v{CACHE_VERSION}\n".encode())
        for path, label in self.train + self.val:
            digest.update(f"{path.relative_to(root)}\t{label}\n".encode())
        return digest.hexdigest()[:16]


REFETCH = f"unzip a fresh {ARCHIVE} ({URL}) over the tree, or remove the file"


def read_text(path: Path) -> str:
    """A text file of the tree (wnids, annotations); a one-line error naming it if unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise corrupt_file_error(path, f"not a text file ({error.reason})", REFETCH) from error
    except OSError as error:
        raise BenchError(f"cannot read data file {path}: {one_line(error)}") from error


def list_tree(root: Path) -> Listing:
    """Read ``wnids.txt``, the training folders and the validation annotations."""
    wnids_file = root / "wnids.txt"
    wnids = sorted({line.strip() for line in read_text(wnids_file).splitlines()} - {""})
    if not wnids:
        raise corrupt_file_error(wnids_file, "it lists no wnids", REFETCH)
    index = {wnid: i for i, wnid in enumerate(wnids)}
    train: list[tuple[Path, int]] = []
    for wnid in wnids:
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise BenchError(f"{root}: wnids.txt lists {wnid} but {folder} does not exist")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        train += [(path, index[wnid]) for path in files]
    val: list[tuple[Path, int]] = []
    annotations = root / "val" / "val_annotations.txt"
    for number, line in enumerate(read_text(annotations).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise corrupt_file_error(
                annotations,
                f"line {number} is not 'file<TAB>wnid<TAB>box' with a wnid of wnids.txt",
                REFETCH,
            )
        val.append((root / "val" / "images" / fields[0], index[fields[1]]))
    return Listing(wnids, train, val)


def decode_images(paths: list[Path]) -> torch.Tensor:
    """JPEGs -> ``(N, 3, 64, 64)`` uint8 (grey images become RGB), decoded in threads.

    A file that cannot be decoded (truncated, not an image) or is not 64x64 raises a one-line
    BenchError naming it.
    """
    out = np.empty((len(paths), SIZE, SIZE, 3), dtype=np.uint8)

    def read(item: tuple[int, Path]) -> None:
        i, path = item
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except FileNotFoundError as error:
            raise BenchError(f"data file {path} is missing ({REFETCH})") from error
        except Exception as error:  # PIL: UnidentifiedImageError, truncated streams, ...
            problem = f"cannot decode the image ({type(error).__name__}: {error})"
            raise corrupt_file_error(path, problem, REFETCH) from error
        if pixels.shape != (SIZE, SIZE, 3):
            height, width = pixels.shape[:2]
            problem = f"a {width}x{height} image, not {SIZE}x{SIZE}"
            raise corrupt_file_error(path, problem, REFETCH)
        out[i] = pixels

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(read, enumerate(paths)))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def cache_paths(root: Path, fingerprint: str) -> list[Path]:
    """Where the decoded cache may live: beside the images, else in the default data root."""
    name = f"paibench-uint8-{fingerprint}.pt"
    return [root / name, default_data_root() / f"{FOLDER}-{name}"]


def _save_cache(data: dict[str, Any], paths: list[Path]) -> None:
    errors = []
    for cache in paths:
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(data, partial)
            partial.replace(cache)  # atomic: concurrent runs never read half a cache
            return
        except OSError as error:
            partial.unlink(missing_ok=True)
            errors.append(f"{cache}: {error}")
    warnings.warn(f"could not cache decoded Tiny ImageNet ({'; '.join(errors)})", stacklevel=3)


def _read_cache(cache: Path, listing: Listing) -> dict[str, Any] | None:
    """The cached tensors, or None (with a warning) when the cache is damaged or does not match
    the listing: the cache is derived from the images, so it is rebuilt rather than an error."""
    try:
        data = torch.load(cache, weights_only=True)
        sizes = {"train": len(listing.train), "val": len(listing.val)}
        for split, n in sizes.items():
            x, y = data[f"x_{split}"], data[f"y_{split}"]
            if x.dtype != torch.uint8 or tuple(x.shape) != (n, 3, SIZE, SIZE) or y.shape != (n,):
                raise ValueError(f"{split} tensors {tuple(x.shape)}, {tuple(y.shape)} for {n}")
        return data
    except Exception as error:  # truncated zip, unpickling, missing keys, wrong shapes
        warnings.warn(
            f"ignoring the damaged Tiny ImageNet cache {cache} ({one_line(error, 200)}); "
            "decoding the images again",
            stacklevel=3,
        )
        return None


def load_uint8(root: Path) -> dict[str, Any]:
    """The decoded tree as uint8 tensors and labels, from the cache when it is current."""
    listing = list_tree(root)
    paths = cache_paths(root, listing.fingerprint(root))
    for cache in paths:
        if cache.is_file():
            data = _read_cache(cache, listing)
            if data is not None:
                return data
    missing = [str(path) for path, _ in listing.val if not path.is_file()]
    if missing:
        raise BenchError(f"{root}: {len(missing)} validation images are missing, e.g. {missing[0]}")
    data = {
        "x_train": decode_images([p for p, _ in listing.train]),
        "y_train": torch.tensor([label for _, label in listing.train], dtype=torch.long),
        "x_val": decode_images([p for p, _ in listing.val]),
        "y_val": torch.tensor([label for _, label in listing.val], dtype=torch.long),
    }
    _save_cache(data, paths)
    return data


@register(
    "tiny-imagenet",
    default_arch="resnet18",
    batches_per_step=20,  # Table 3
    description="the tiny-imagenet-200/ tree in --data-dir; the best val accuracy is reported",
)
class TinyImageNetDataModule(ImageDataModule):
    """Tiny ImageNet: train on all of train/, validate (and report) on the official val/."""

    name = "tiny-imagenet"
    input_shape = (3, SIZE, SIZE)
    num_classes = 200
    has_test_labels = False
    normalization = TINY_IMAGENET_NORM
    augmented = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.val_fraction = 0.0  # the official val/ is the validation split, not 10% of train

    def load_pixels(self) -> Splits:
        candidates = candidate_dirs(self.data_dir, FOLDER)
        root, notes = locate(candidates, _missing)
        if root is None:
            raise missing_data_error(
                self.name,
                notes,
                f"download {ARCHIVE} ({URL}; --download does not fetch it) and unzip it into "
                f"{candidates[0].parent} so that {candidates[0] / 'wnids.txt'} exists",
            )
        data = load_uint8(root)
        return Splits(data["x_train"], data["y_train"], data["x_val"], data["y_val"])

    def setup(self, stage: str | None = None) -> None:
        first = not self._ready
        super().setup(stage)
        if first:
            self.x_val, self.y_val = self.x_test, self.y_test
