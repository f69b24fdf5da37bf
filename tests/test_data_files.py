"""Damaged data files and the check before a grid: every corrupt, truncated or malformed file
of every on-disk format (gzipped and plain IDX, CIFAR pickle batches, the Tiny ImageNet tree)
is a one-line BenchError naming the file, and ``bench.data.check_available`` raises the same
error a run would, before anything is trained or stored. Files are written small, here."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import warnings
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
from PIL import Image

import bench.data
from bench.data import DATASETS, check_available, make_datamodule
from bench.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from bench.data.digits import digits_arrays
from bench.data.fashion_mnist import FILES, FashionMNISTDataModule
from bench.data.tiny_imagenet import TinyImageNetDataModule
from bench.errors import BenchError
from tests.test_data import (
    WNIDS,
    write_cifar,
    write_fashion,
    write_idx,
    write_py2_pickle,
    write_tiny,
)


@pytest.fixture
def skip_cifar_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accept any existing CIFAR file (written files cannot match the real md5 sums)."""
    monkeypatch.setattr(
        torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath)
    )


def corrupt(path: Path, problem: str) -> str:
    """The start of the one-line message for ``path`` (a regex)."""
    return rf"^corrupt data file {re.escape(str(path))}: (?:{problem})"


def load_error(module: bench.data.TensorDataModule) -> str:
    """The message a run gets from ``setup``; checks it is one line and a BenchError."""
    with pytest.raises(BenchError) as error:
        module.setup()
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --------------------------------------------------------------------------------------------
# Fashion-MNIST: gzipped and plain IDX


def fashion(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """Valid files (training pair gzipped, test pair plain) and the path of each."""
    directory = tmp_path / "fm"
    write_fashion(directory)
    paths = {
        key: directory / (stem + (".gz" if key.endswith("train") else ""))
        for key, stem in FILES.items()
    }
    assert all(path.is_file() for path in paths.values())
    return directory, paths


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    directory, paths = fashion(tmp_path)
    path = paths["x_train"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = load_error(FashionMNISTDataModule(data_dir=directory))
    assert re.match(
        corrupt(path, r"truncated gzip stream \(.*\) \(replace it .*remove it\)$"), message
    )


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    directory, paths = fashion(tmp_path)
    path = paths["y_train"]
    raw = bytearray(path.read_bytes())
    raw[-8:-4] = bytes(b ^ 0xFF for b in raw[-8:-4])  # the CRC32 of the gzip trailer
    path.write_bytes(bytes(raw))
    message = load_error(FashionMNISTDataModule(data_dir=directory))
    assert re.match(corrupt(path, r"corrupt gzip stream \(CRC check failed"), message)
    raw = bytearray(gzip.compress(b"\x00" * 5000))  # a deflate stream with garbage inside
    raw[12:40] = b"\xff" * 28
    path.write_bytes(bytes(raw))
    message = load_error(FashionMNISTDataModule(data_dir=directory))
    assert re.match(corrupt(path, r"(corrupt|truncated) gzip stream"), message)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (lambda raw: raw[:-1], r"truncated IDX file: dims \(20, 28, 28\) need 15696 bytes but"),
        (lambda raw: raw + b"\x00", r"trailing bytes after the IDX file: dims \(20, 28, 28\)"),
        (lambda raw: raw[:10], r"IDX header truncated \(10 bytes\)"),
        (lambda raw: b"", r"not an IDX file \(magic number empty\)"),
        (lambda raw: b"<html>404</html>", r"not an IDX file \(magic number 3c68746d\)"),
    ],
)
def test_damaged_plain_idx_names_the_file(tmp_path: Path, content, problem: str) -> None:
    directory, paths = fashion(tmp_path)
    path = paths["x_test"]
    path.write_bytes(content(path.read_bytes()))
    assert re.match(corrupt(path, problem), load_error(FashionMNISTDataModule(data_dir=directory)))


def test_truncated_data_inside_a_whole_gzip_names_the_file(tmp_path: Path) -> None:
    directory, paths = fashion(tmp_path)
    path = paths["x_train"]
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    message = load_error(FashionMNISTDataModule(data_dir=directory))
    assert re.match(
        corrupt(path, r"truncated IDX data \(after gunzip\): dims \(50, 28, 28\)"), message
    )


def test_idx_files_with_the_wrong_content_name_the_file(tmp_path: Path) -> None:
    directory, paths = fashion(tmp_path)
    labels = paths["y_test"]
    write_idx(labels, np.zeros((20, 28, 28), np.uint8), gz=False)  # images where labels belong
    assert re.match(
        corrupt(labels, r"IDX dims \(20, 28, 28\), not \(N,\) labels"),
        load_error(FashionMNISTDataModule(data_dir=directory)),
    )
    write_idx(labels, np.full(20, 10, np.uint8), gz=False)
    assert re.match(
        corrupt(labels, r"labels outside \[0, 10\) \(min 10, max 10\)"),
        load_error(FashionMNISTDataModule(data_dir=directory)),
    )
    write_idx(labels, np.zeros(19, np.uint8), gz=False)
    message = load_error(FashionMNISTDataModule(data_dir=directory))
    assert message.startswith(
        f"fashion-mnist test files disagree: {paths['x_test']} holds 20 images but {labels} "
        "holds 19 labels"
    )
    images = paths["x_test"]
    write_idx(images, np.zeros((20, 32, 32), np.uint8), gz=False)
    assert re.match(
        corrupt(images, r"IDX uint8 dims \(20, 32, 32\), not \(N, 28, 28\) uint8 images"),
        load_error(FashionMNISTDataModule(data_dir=directory)),
    )


# --------------------------------------------------------------------------------------------
# CIFAR: python pickle batches


def test_cifar_md5_mismatch_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path, hundred=False)
    folder = tmp_path / "cifar-10-batches-py"
    message = load_error(CIFAR10DataModule(data_dir=tmp_path))  # every written file mismatches
    assert re.match(
        corrupt(folder / "data_batch_1", r"its md5 is not c99cafc152244af753f735de768cd75f"),
        message,
    )
    assert f"delete {folder} and rerun with --download" in message
    monkeypatch.setattr(
        torchvision.datasets.cifar,
        "check_integrity",
        lambda fpath, md5=None: not str(fpath).endswith("test_batch"),
    )
    message = load_error(CIFAR10DataModule(data_dir=tmp_path))
    assert re.match(
        corrupt(folder / "test_batch", r"its md5 is not .*: truncated or damaged"), message
    )


def test_cifar_missing_file_is_named_before_and_after_a_download(
    tmp_path: Path, skip_cifar_md5: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar(tmp_path, hundred=True)
    folder = tmp_path / "cifar-100-python"
    (folder / "test").unlink()
    message = load_error(CIFAR100DataModule(data_dir=tmp_path))
    assert message.startswith(f"cifar100 data not found; looked in: {folder} (missing test);")
    fetched: list[str] = []

    def offline(url: str, root: str, **kwargs: object) -> None:
        fetched.append(url)
        raise URLError("no network")

    monkeypatch.setattr("bench.data.cifar.download_and_extract_archive", offline)
    message = load_error(CIFAR100DataModule(data_dir=tmp_path, download=True))
    assert fetched == [torchvision.datasets.CIFAR100.url]
    assert message.startswith(f"cifar100: downloading {fetched[0]} into {tmp_path} failed (")
    # A download that leaves the folder incomplete names the file still missing.
    monkeypatch.setattr("bench.data.cifar.download_and_extract_archive", lambda *a, **k: None)
    message = load_error(CIFAR100DataModule(data_dir=tmp_path, download=True))
    assert message.startswith(f"cifar100: {folder / 'test'} is missing (delete {folder}")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[:-50]), r"truncated pickle \(Unpickl"),
        (lambda path: path.write_bytes(path.read_bytes()[:3]), r"truncated pickle \("),
        (
            lambda path: path.write_bytes(b"<html>404 Not Found</html>"),
            r"not a CIFAR pickle \(UnpicklingError",
        ),
        (lambda path: path.write_bytes(b""), r"truncated pickle \(EOFError: Ran out of input\)"),
        (
            lambda path: write_py2_pickle(path, {"batch_label": "x"}),
            r"not a CIFAR batch \(expected keys 'data' and labels, found \['batch_label'\]\)",
        ),
        (
            lambda path: path.write_bytes(pickle.dumps([1, 2, 3])),
            r"not a CIFAR batch \(expected keys 'data' and labels, found list\)",
        ),
        (
            lambda path: write_py2_pickle(
                path, {"data": np.zeros((6, 100), np.uint8), "labels": [0] * 6}
            ),
            r"'data' is uint8 \(6, 100\), not \(N, 3072\) uint8",
        ),
        (
            lambda path: write_py2_pickle(
                path, {"data": np.zeros((6, 3072), np.uint8), "labels": [0] * 5}
            ),
            r"6 images but 5 labels",
        ),
    ],
)
def test_damaged_cifar_batch_names_the_file(
    tmp_path: Path, skip_cifar_md5: None, damage, problem: str
) -> None:
    write_cifar(tmp_path, hundred=False)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    damage(path)
    message = load_error(CIFAR10DataModule(data_dir=tmp_path))
    assert re.match(corrupt(path, problem), message), message
    assert message.endswith(f"into {tmp_path})")


def test_cifar_labels_outside_the_classes_are_a_one_line_error(
    tmp_path: Path, skip_cifar_md5: None
) -> None:
    write_cifar(tmp_path, hundred=False)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    write_py2_pickle(path, {"data": np.zeros((8, 3072), np.uint8), "labels": [12] * 8})
    message = load_error(CIFAR10DataModule(data_dir=tmp_path))
    assert message == "data set 'cifar10': test labels outside [0, 10) (min 12, max 12)"


# --------------------------------------------------------------------------------------------
# Tiny ImageNet: the tree of JPEGs and text files


def tiny(tmp_path: Path) -> Path:
    write_tiny(tmp_path)
    return tmp_path / "tiny-imagenet-200"


def test_truncated_and_garbage_jpegs_name_the_file(tmp_path: Path) -> None:
    tree = tiny(tmp_path)
    path = tree / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_2.JPEG"
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(path)  # a JPEG big enough that half of it is missing data
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = load_error(TinyImageNetDataModule(data_dir=tmp_path))
    assert re.match(
        corrupt(path, r"cannot decode the image \(OSError: image file is truncated"), message
    )
    assert message.endswith("over the tree, or remove the file)")
    path.write_bytes(b"not a jpeg at all")
    message = load_error(TinyImageNetDataModule(data_dir=tmp_path))
    assert re.match(corrupt(path, r"cannot decode the image \(UnidentifiedImageError"), message)


def test_wrong_size_jpeg_names_the_file(tmp_path: Path) -> None:
    tree = tiny(tmp_path)
    path = tree / "val" / "images" / "val_3.JPEG"
    Image.new("RGB", (32, 48)).save(path)
    message = load_error(TinyImageNetDataModule(data_dir=tmp_path))
    assert re.match(corrupt(path, r"a 32x48 image, not 64x64"), message)


def test_damaged_text_files_name_the_file(tmp_path: Path) -> None:
    tree = tiny(tmp_path)
    annotations = tree / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines()
    annotations.write_text("\n".join([*lines[:2], "val_2.JPEG\tn99999999\t0\t0\t63\t63"]))
    message = load_error(TinyImageNetDataModule(data_dir=tmp_path))
    assert re.match(corrupt(annotations, r"line 3 is not 'file<TAB>wnid<TAB>box'"), message)
    wnids = tree / "wnids.txt"
    wnids.write_bytes(b"\xff\xfe\x00garbage")
    assert re.match(
        corrupt(wnids, r"not a text file \(invalid start byte\)"),
        load_error(TinyImageNetDataModule(data_dir=tmp_path)),
    )
    wnids.write_text("\n\n")
    assert re.match(
        corrupt(wnids, "it lists no wnids"), load_error(TinyImageNetDataModule(data_dir=tmp_path))
    )


def test_a_damaged_cache_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    tree = tiny(tmp_path)
    first = TinyImageNetDataModule(data_dir=tmp_path)
    first.setup()
    (cache,) = tree.glob("paibench-uint8-*.pt")
    cache.write_bytes(cache.read_bytes()[:1000])
    again = TinyImageNetDataModule(data_dir=tmp_path)
    with pytest.warns(
        UserWarning, match=rf"ignoring the damaged Tiny ImageNet cache {re.escape(str(cache))}"
    ):
        again.setup()
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_val, first.y_val)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: the next load reads it silently
        TinyImageNetDataModule(data_dir=tmp_path).setup()
    torch.save({"x_train": torch.zeros(2, 3, 64, 64, dtype=torch.uint8)}, cache)
    with pytest.warns(UserWarning, match="ignoring the damaged"):
        TinyImageNetDataModule(data_dir=tmp_path).setup()


# --------------------------------------------------------------------------------------------
# check_available: the error a run would raise, before the grid starts


def test_check_available_digits_is_cheap_and_silent() -> None:
    assert check_available("digits") is None
    hits = digits_arrays.cache_info().hits
    assert check_available("digits", train_subset=200) is None
    assert digits_arrays.cache_info().hits == hits + 1, "scikit-learn's file is read once"


def test_check_available_names_unknown_sets_and_bad_subsets() -> None:
    with pytest.raises(BenchError, match=r"^unknown dataset 'nope' \(valid: digits, "):
        check_available("nope")
    with pytest.raises(BenchError, match=r"^train_subset 2000 is outside \[1, 1438\] for digits"):
        check_available("digits", train_subset=2000)


def test_check_available_raises_what_the_run_would(tmp_path: Path) -> None:
    directory, paths = fashion(tmp_path)
    assert check_available("fashion-mnist", data_dir=str(directory)) is None
    assert check_available("fashion-mnist", data_dir=str(directory), train_subset=50) is None
    with pytest.raises(BenchError, match=r"^train_subset 51 is outside \[1, 50\]"):
        check_available("fashion-mnist", data_dir=str(directory), train_subset=51)
    path = paths["x_train"]
    path.write_bytes(path.read_bytes()[:100])
    run_message = load_error(make_datamodule("fashion-mnist", data_dir=directory))
    with pytest.raises(BenchError) as error:
        check_available("fashion-mnist", data_dir=str(directory))
    assert str(error.value) == run_message and str(path) in run_message
    missing = tmp_path / "nothing"
    run_message = load_error(make_datamodule("fashion-mnist", data_dir=missing))
    with pytest.raises(BenchError) as error:
        check_available("fashion-mnist", data_dir=missing)
    assert str(error.value) == run_message
    assert run_message.startswith("fashion-mnist data not found; looked in:")


def test_check_available_skips_the_float_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skip_cifar_md5: None
) -> None:
    """Image sets check their uint8 pixels; the normalised float copy is the run's to make."""
    directory, _ = fashion(tmp_path)
    write_cifar(tmp_path / "c", hundred=True)

    def no_float_copy(self: object) -> None:
        raise AssertionError("normalised")

    for module in (FashionMNISTDataModule, CIFAR100DataModule, TinyImageNetDataModule):
        monkeypatch.setattr(module, "load", no_float_copy)
    check_available("fashion-mnist", data_dir=directory)
    check_available("cifar100", data_dir=tmp_path / "c")
    tiny(tmp_path / "t")
    check_available("tiny-imagenet", data_dir=tmp_path / "t")


def test_check_available_fills_the_tiny_imagenet_cache_the_run_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny(tmp_path)
    check_available("tiny-imagenet", data_dir=tmp_path, train_subset=13)
    with pytest.raises(BenchError, match=r"^train_subset 14 is outside \[1, 13\]"):
        check_available("tiny-imagenet", data_dir=tmp_path, train_subset=14)

    def decode(paths: list[Path]) -> torch.Tensor:
        raise AssertionError("decoded again")

    monkeypatch.setattr("bench.data.tiny_imagenet.decode_images", decode)
    module = make_datamodule("tiny-imagenet", data_dir=tmp_path, train_subset=5)
    module.setup()
    assert len(module.y_train) == 5 and len(module.y_val) == 6


@pytest.fixture
def clean_registry():
    before = dict(DATASETS)
    yield
    DATASETS.clear()
    DATASETS.update(before)


def test_check_available_on_plugins(clean_registry: None) -> None:
    @bench.data.register("flaky", input_shape=(1, 1, 3), num_classes=2)
    def flaky() -> tuple[np.ndarray, ...]:
        raise FileNotFoundError("/data/flaky.npz: no such file\nsecond line")

    with pytest.raises(BenchError) as error:
        check_available("flaky")
    assert str(error.value) == (
        "data set 'flaky' failed to load: FileNotFoundError: /data/flaky.npz: no such file "
        "second line"
    )

    @bench.data.register("wide", input_shape=(1, 1, 3), num_classes=2)
    def wide() -> tuple[np.ndarray, ...]:
        y = np.arange(10) % 3  # a third class the registration does not declare
        return np.zeros((10, 3)), y, np.zeros((2, 3)), y[:2]

    with pytest.raises(BenchError, match=r"^data set 'wide': train labels outside \[0, 2\)"):
        check_available("wide")
