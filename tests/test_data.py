"""The file-backed data sets, each read from small files written here in the exact on-disk
formats (IDX, CIFAR python pickles, the Tiny ImageNet tree); nothing is downloaded. The data set
registry: built-in facts (Table 3's batches per step), registering a function or a class, and
the one-line errors."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
from PIL import Image

import bench.data
from bench.data import DATASETS, TensorDataModule, make_datamodule
from bench.data.augment import CIFAR10_NORM, RandomCropFlip, crop_flip
from bench.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from bench.data.common import DATA_ENV
from bench.data.fashion_mnist import DEBIAN_DIR, FILES, FashionMNISTDataModule, read_idx
from bench.data.tiny_imagenet import TinyImageNetDataModule
from bench.errors import BenchError
from reports.style import DATASET_CLASSES, chance_accuracy

# --------------------------------------------------------------------------------------------
# Writers of the real on-disk formats


def write_idx(path: Path, array: np.ndarray, *, gz: bool, type_code: int = 0x08) -> None:
    """IDX: magic 0x00 0x00 <type> <ndim>, big-endian uint32 dims, big-endian data."""
    dtype = {0x08: ">u1", 0x0C: ">i4"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(dtype).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_fashion(directory: Path, n_train: int = 50, n_test: int = 20) -> dict[str, np.ndarray]:
    """The four Fashion-MNIST files: the training pair gzipped, the test pair plain."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in FILES.items():
        gz = key.endswith("train")
        write_idx(directory / (stem + (".gz" if gz else "")), arrays[key], gz=gz)
    return arrays


class Py2Str(bytes):
    """A Python 2 ``str``: the real CIFAR pickles were written by Python 2's cPickle."""


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add one opcode writer
    """Pickles :class:`Py2Str` with SHORT_BINSTRING/BINSTRING, as Python 2 did for ``str``.

    Such keys load as ``'data'`` with ``encoding='latin1'`` (what torchvision uses) and as
    ``b'data'`` with ``encoding='bytes'`` (what the CIFAR web page shows), like the real files.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2str(self, obj: Py2Str) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + bytes(obj))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str


def write_py2_pickle(path: Path, entry: dict[str, object]) -> None:
    with path.open("wb") as f:
        Py2Pickler(f, protocol=2).dump({Py2Str(k.encode()): v for k, v in entry.items()})


def write_cifar(
    root: Path, hundred: bool, per_file: int = 6, n_test: int = 8
) -> dict[str, np.ndarray]:
    """A miniature ``cifar-10-batches-py/`` or ``cifar-100-python/`` with the real dict keys."""
    rng = np.random.default_rng(1)
    classes = 100 if hundred else 10
    label_key = "fine_labels" if hundred else "labels"
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    sizes = [per_file * (5 if hundred else 1)] * len(names) + [n_test]
    xs, ys = [], []
    for name, size in zip([*names, "test" if hundred else "test_batch"], sizes):
        data = rng.integers(0, 256, (size, 3072), dtype=np.uint8)  # rows: 1024 R, G, B
        labels = rng.integers(0, classes, size).tolist()
        entry: dict[str, object] = {
            "batch_label": Py2Str(f"{name} batch".encode()),
            label_key: labels,
            "data": data,
            "filenames": [Py2Str(f"img_{i}.png".encode()) for i in range(size)],
        }
        if hundred:
            entry["coarse_labels"] = [label // 5 for label in labels]
        write_py2_pickle(folder / name, entry)
        xs.append(data)
        ys.append(np.array(labels))
    if hundred:
        meta = {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": []}
        write_py2_pickle(folder / "meta", meta)
    else:
        meta = {"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": per_file}
        write_py2_pickle(folder / "batches.meta", meta)
    return {
        "x_train": np.concatenate(xs[:-1]),
        "y_train": np.concatenate(ys[:-1]),
        "x_test": xs[-1],
        "y_test": ys[-1],
    }


@pytest.fixture
def skip_cifar_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-only: torchvision checks each file's md5 against the real archive's, which files
    written here cannot match; keep its check but accept any existing file. Production code
    is untouched (see test_cifar_md5_check_is_kept)."""
    monkeypatch.setattr(
        torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath)
    )


WNIDS = ["n03444034", "n01443537", "n02124075"]  # deliberately unsorted in wnids.txt
COLOURS = {"n01443537": (200, 30, 30), "n02124075": (30, 200, 30), "n03444034": (30, 30, 200)}


def write_tiny(root: Path, per_class: int = 4) -> list[str]:
    """A miniature ``tiny-imagenet-200/`` tree of solid-colour 64x64 JPEGs (one greyscale)."""
    tree = root / "tiny-imagenet-200"
    (tree / "val" / "images").mkdir(parents=True)
    (tree / "test" / "images").mkdir(parents=True)
    (tree / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for wnid in WNIDS:
        images = tree / "train" / wnid / "images"
        images.mkdir(parents=True)
        for k in range(per_class):
            Image.new("RGB", (64, 64), COLOURS[wnid]).save(images / f"{wnid}_{k}.JPEG")
        (tree / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    val_wnids = ["n02124075", "n01443537", "n03444034", "n02124075", "n01443537", "n03444034"]
    lines = []
    for i, wnid in enumerate(val_wnids):
        Image.new("RGB", (64, 64), COLOURS[wnid]).save(tree / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (tree / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    Image.new("L", (64, 64), 128).save(tree / "train" / WNIDS[0] / "images" / "grey.JPEG")
    Image.new("RGB", (64, 64)).save(tree / "test" / "images" / "test_0.JPEG")
    return val_wnids


# --------------------------------------------------------------------------------------------
# Registry


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Whatever a test registers is gone afterwards."""
    before = dict(DATASETS)
    yield
    DATASETS.clear()
    DATASETS.update(before)


def test_registry_names_and_defaults() -> None:
    assert bench.data.available()[0] == "digits"
    assert next(iter(DATASETS)) == "digits"
    assert DATASETS["digits"].default_arch == "mlp" and DATASETS["digits"].default_epochs == 50
    for name in ("fashion-mnist", "cifar10", "cifar100", "tiny-imagenet"):
        spec = DATASETS[name]
        assert spec.module.name == name
        assert spec.default_arch == "resnet18" and spec.default_epochs is None
    shapes = {n: (s.module.input_shape, s.module.num_classes) for n, s in DATASETS.items()}
    assert shapes["fashion-mnist"] == ((1, 28, 28), 10)
    assert shapes["cifar100"] == ((3, 32, 32), 100)
    assert shapes["tiny-imagenet"] == ((3, 64, 64), 200)
    assert all(s.origin == "built-in" for s in DATASETS.values())
    assert (DATASETS["cifar100"].input_shape, DATASETS["cifar100"].num_classes) == (
        (3, 32, 32),
        100,
    )


def test_reports_class_counts_agree_with_the_registry() -> None:
    """reports may not import bench, so reports.style repeats the built-in class counts until
    runs record theirs; this keeps the copy equal to its home, the data set registry."""
    assert {
        n: s.num_classes for n, s in DATASETS.items() if s.origin == "built-in"
    } == DATASET_CLASSES
    assert chance_accuracy("cifar100") == 0.01 and chance_accuracy("a-plugin-set", 4) == 0.25


def test_batches_per_step_follow_table_3() -> None:
    """FORCE/Iter-SNIP batches per pruning step are a fact of the data set (Table 3)."""
    table_3 = {"cifar10": 1, "cifar100": 10, "tiny-imagenet": 20, "digits": 1, "fashion-mnist": 1}
    assert {n: bench.data.dataset_spec(n).batches_per_step for n in table_3} == table_3


def test_unknown_dataset_is_one_line_naming_the_valid_ones() -> None:
    with pytest.raises(BenchError, match=r"^unknown dataset 'nope' \(valid: digits, .*cifar100"):
        make_datamodule("nope")


def test_a_registered_function_is_a_seeded_lightning_datamodule(clean_registry: None) -> None:
    seen: list[object] = []

    @bench.data.register("blobs", input_shape=(1, 1, 3), num_classes=2, default_epochs=7)
    def blobs(data_dir: Path | None = None) -> tuple[np.ndarray, ...]:
        """Two Gaussian blobs in 3-D (synthetic, deterministic)."""
        seen.append(data_dir)
        rng = np.random.default_rng(0)
        y = np.arange(60) % 2
        x = rng.normal(size=(60, 3)) + 3 * y[:, None]
        return x[:50], y[:50], x[50:], y[50:]

    spec = bench.data.dataset_spec("blobs")
    assert "blobs" in bench.data.available()
    assert (spec.input_shape, spec.num_classes, spec.default_arch) == ((1, 1, 3), 2, "mlp")
    assert (spec.default_epochs, spec.batches_per_step) == (7, 1)
    assert spec.description == "Two Gaussian blobs in 3-D (synthetic, deterministic)."
    assert spec.origin.startswith(f"{__name__} (")
    module = make_datamodule("blobs", batch_size=8, seed=3, data_dir="/some/where")
    assert isinstance(module, L.LightningDataModule) and isinstance(module, TensorDataModule)
    module.setup()
    assert seen == [Path("/some/where")]
    assert module.x_train.shape == (45, 1, 1, 3) and module.x_train.dtype == torch.float32
    assert (
        module.y_train.dtype == torch.long and len(module.y_val) == 5 and len(module.y_test) == 10
    )
    x, y = next(iter(module.train_dataloader()))
    assert x.shape == (8, 1, 1, 3) and y.shape == (8,)
    again = make_datamodule("blobs", batch_size=8, seed=3)
    again.setup()
    assert torch.equal(again.x_val, module.x_val)


def test_a_registered_class_keeps_its_attributes(clean_registry: None) -> None:
    @bench.data.register("ones", default_arch="small_cnn", batches_per_step=4)
    class Ones(TensorDataModule):
        """All-ones images."""

        input_shape = (1, 2, 2)
        num_classes = 2

        def load(self) -> bench.data.Splits:
            y = torch.arange(20) % 2
            return bench.data.Splits(torch.ones(20, 1, 2, 2), y, torch.ones(4, 1, 2, 2), y[:4])

    spec = bench.data.dataset_spec("ones")
    assert spec.module is Ones and Ones.name == "ones"
    assert (spec.default_arch, spec.batches_per_step, spec.description) == (
        "small_cnn",
        4,
        "All-ones images.",
    )
    make_datamodule("ones").setup()


def test_registration_errors(clean_registry: None) -> None:
    def splits() -> tuple[torch.Tensor, ...]:
        return torch.zeros(4, 3), torch.zeros(4), torch.zeros(2, 3), torch.zeros(2)

    with pytest.raises(TypeError, match="needs input_shape= and num_classes="):
        bench.data.register("no_shape")(splits)
    with pytest.raises(ValueError, match=r"'digits' is already registered \(by built-in\)"):
        bench.data.register("digits", input_shape=(1, 1, 3), num_classes=2)(splits)
    with pytest.raises(ValueError, match="bad data set name"):
        bench.data.register("a b", input_shape=(1, 1, 3), num_classes=2)(splits)
    with pytest.raises(ValueError, match="batches_per_step"):
        bench.data.register("bps", input_shape=(1, 1, 3), num_classes=2, batches_per_step=0)(splits)
    with pytest.raises(ValueError, match="num_classes must be set"):
        bench.data.register("no_classes")(type("NoClasses", (TensorDataModule,), {}))
    assert not {"no_shape", "a b", "bps", "no_classes"} & set(DATASETS)


@pytest.mark.parametrize(
    ("shape", "classes", "labels", "match"),
    [
        ((1, 1, 4), 2, [0, 1], r"examples of shape \(3,\) cannot be viewed as .*\(1, 1, 4\)"),
        ((1, 1, 3), 2, [0, 2], r"'bad': train labels outside \[0, 2\) \(min 0, max 2\)"),
    ],
)
def test_declared_shape_and_classes_are_checked_at_setup(
    clean_registry: None,
    shape: tuple[int, int, int],
    classes: int,
    labels: list[int],
    match: str,
) -> None:
    @bench.data.register("bad", input_shape=shape, num_classes=classes)
    def bad() -> tuple[torch.Tensor, ...]:
        y = torch.tensor(labels * 5)
        return torch.zeros(10, 3), y, torch.zeros(2, 3), y[:2]

    with pytest.raises(BenchError, match=match):
        make_datamodule("bad").setup()


# --------------------------------------------------------------------------------------------
# Validation split and train_subset


def digits(**kwargs: object) -> TensorDataModule:
    module = make_datamodule("digits", **kwargs)
    module.setup()
    return module


def test_train_subset_holds_out_its_own_validation_split() -> None:
    """--train-subset N: the first N of the seeded shuffle, round(10% of N) of them validate."""
    whole = digits(seed=4)
    splits = whole.load()
    order = torch.randperm(len(splits.y_train), generator=whole.generator("split"))
    for subset, n_val in ((200, 20), (6, 1), (1000, 100), (1438, 144)):
        module = digits(seed=4, train_subset=subset)
        assert (len(module.y_train), len(module.y_val)) == (subset - n_val, n_val)
        assert torch.equal(module.x_val, splits.x_train[order[:n_val]])
        assert torch.equal(module.y_train, splits.y_train[order[n_val:subset]])
    # The subset is a prefix of the same shuffle for every N: a bigger one contains a smaller.
    small, big = digits(seed=4, train_subset=200), digits(seed=4, train_subset=400)
    used = torch.cat([big.x_val, big.x_train])
    assert torch.equal(torch.cat([small.x_val, small.x_train]), used[:200])


def test_without_train_subset_the_split_is_unchanged() -> None:
    """10% of the whole training split validates (1,438 digits: 144 and 1,294), as before."""
    module = digits(seed=4)
    splits = module.load()
    order = torch.randperm(1438, generator=module.generator("split"))
    assert len(splits.y_train) == 1438
    assert (len(module.y_train), len(module.y_val), len(module.y_test)) == (1294, 144, 359)
    assert torch.equal(module.x_val, splits.x_train[order[:144]])
    assert torch.equal(module.x_train, splits.x_train[order[144:]])
    assert torch.equal(digits(seed=4, train_subset=1438).x_val, module.x_val)


@pytest.mark.parametrize(
    ("subset", "match"),
    [
        (0, r"^train_subset 0 is outside \[1, 1438\] for digits"),
        (1439, r"^train_subset 1439 is outside \[1, 1438\] for digits"),
        (5, r"^train_subset 5 is too small for digits: holding out round\(0.1 \* 5\) = 0"),
        (1, r"^train_subset 1 is too small for digits"),
    ],
)
def test_bad_train_subset_is_one_line(subset: int, match: str) -> None:
    with pytest.raises(BenchError, match=match) as error:
        digits(train_subset=subset)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------------------------
# Augmentation


def pattern(batch: int, channels: int = 2, size: int = 8) -> torch.Tensor:
    """Every pixel distinct and positive, so a crop/flip is identified by its values."""
    x = torch.arange(1, channels * size * size + 1, dtype=torch.float32)
    return x.view(1, channels, size, size).repeat(batch, 1, 1, 1)


def reference(
    x: torch.Tensor, dy: int, dx: int, flip: bool, pad: int, fill: torch.Tensor
) -> torch.Tensor:
    c, h, w = x.shape
    padded = fill.view(c, 1, 1).expand(c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, pad : pad + h, pad : pad + w] = x
    crop = padded[:, dy : dy + h, dx : dx + w]
    return crop.flip(-1) if flip else crop


def test_crop_flip_matches_pad_crop_flip_and_covers_offsets() -> None:
    fill = torch.tensor([-1.0, -2.0])
    augment = RandomCropFlip(padding=4, fill=tuple(fill.tolist()))
    x = pattern(64)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for image in out:
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if torch.equal(image, reference(x[0], dy, dx, flip, 4, fill))
        ]
        assert len(matches) == 1, "each output is exactly one crop/flip of the padded input"
        seen.add(matches[0])
    flips = {flip for _, _, flip in seen}
    offsets = {(dy, dx) for dy, dx, _ in seen}
    assert flips == {False, True}
    assert len(offsets) > 20 and any(o != (4, 4) for o in offsets)
    assert (out == -1.0).any() and (out == -2.0).any(), "padding shows the per-channel fill"


def test_crop_flip_is_deterministic_per_generator() -> None:
    augment = crop_flip(CIFAR10_NORM)
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    c = augment(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_normalization_pads_with_normalised_black() -> None:
    """FORCE pads raw pixels with 0 and normalises afterwards: the fill is -mean/std."""
    black = CIFAR10_NORM(torch.zeros(1, 3, 1, 1, dtype=torch.uint8)).flatten()
    assert torch.allclose(black, torch.tensor(crop_flip(CIFAR10_NORM).fill))
    pixels = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.allclose(CIFAR10_NORM.denormalize(CIFAR10_NORM(pixels)), pixels.float(), atol=1e-3)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX)


def test_read_idx_exact(tmp_path: Path) -> None:
    big = np.array([[1, 256], [65536, -2]], dtype=np.int64)
    write_idx(tmp_path / "ints", big, gz=False, type_code=0x0C)
    assert np.array_equal(read_idx(tmp_path / "ints"), big), "big-endian int32 decoded"
    raw = bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + b"\x01\x02"
    (tmp_path / "short").write_bytes(raw)
    short = r"truncated IDX file: dims \(3,\) need 11 bytes but the file has 10"
    with pytest.raises(BenchError, match=short):
        read_idx(tmp_path / "short")
    (tmp_path / "bad").write_bytes(b"\x00\x01\x08\x01" + struct.pack(">I", 0))
    with pytest.raises(BenchError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_fashion_mnist_reads_written_files(tmp_path: Path) -> None:
    arrays = write_fashion(tmp_path / "fm")  # files directly in --data-dir
    dm = FashionMNISTDataModule(data_dir=tmp_path / "fm", seed=0)
    splits = dm.load()
    assert splits.x_train.shape == (50, 1, 28, 28) and splits.x_test.shape == (20, 1, 28, 28)
    assert splits.x_train.dtype == torch.float32 and splits.y_train.dtype == torch.long
    for key in ("y_train", "y_test"):
        assert getattr(splits, key).tolist() == arrays[key].tolist()
    restored = dm.normalization.denormalize(splits.x_train).squeeze(1)
    assert torch.allclose(restored, torch.from_numpy(arrays["x_train"]).float(), atol=1e-3)
    assert dm.augment() is None
    dm.setup()
    assert (len(dm.y_train), len(dm.y_val), len(dm.y_test)) == (45, 5, 20)
    # --data-dir may also be the parent of a fashion-mnist/ folder
    write_fashion(tmp_path / "parent" / "fashion-mnist", n_test=7)
    assert FashionMNISTDataModule(data_dir=tmp_path / "parent").load().x_test.shape[0] == 7


def test_fashion_mnist_missing_names_places_and_apt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "partial").mkdir()
    write_idx(tmp_path / "partial" / FILES["x_train"], np.zeros((1, 28, 28), np.uint8), gz=False)
    with pytest.raises(BenchError) as error:
        FashionMNISTDataModule(data_dir=tmp_path / "partial").load()
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "partial") in message and "t10k-labels-idx1-ubyte[.gz]" in message
    assert "apt-get install dataset-fashion-mnist" in message
    # Without --data-dir: the default root and Debian's directory are both searched.
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "root"))
    monkeypatch.setattr("bench.data.fashion_mnist.DEBIAN_DIR", tmp_path / "debian")
    with pytest.raises(BenchError) as error:
        make_datamodule("fashion-mnist").load()
    assert str(tmp_path / "root" / "fashion-mnist") in str(error.value)
    assert str(tmp_path / "debian") in str(error.value)


@pytest.mark.skipif(
    not all((DEBIAN_DIR / f"{stem}.gz").is_file() for stem in FILES.values()),
    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR} lacks the IDX files)",
)
def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))  # nothing in the default root: found in Debian's
    splits = FashionMNISTDataModule().load()
    assert splits.x_train.shape == (60000, 1, 28, 28) and splits.x_test.shape == (10000, 1, 28, 28)
    assert splits.y_train[:6].tolist() == [9, 0, 0, 3, 0, 2]
    assert splits.y_train.bincount().tolist() == [6000] * 10
    assert abs(float(splits.x_train.mean())) < 1e-3 and abs(float(splits.x_train.std()) - 1) < 1e-3


# --------------------------------------------------------------------------------------------
# CIFAR (python pickles)


@pytest.mark.parametrize(
    "module, hundred", [(CIFAR10DataModule, False), (CIFAR100DataModule, True)]
)
def test_cifar_reads_written_pickles(
    tmp_path: Path, skip_cifar_md5: None, module: type, hundred: bool
) -> None:
    arrays = write_cifar(tmp_path, hundred)
    folder = "cifar-100-python" if hundred else "cifar-10-batches-py"
    with (tmp_path / folder / ("train" if hundred else "data_batch_1")).open("rb") as f:
        assert b"data" in pickle.load(f, encoding="bytes"), "keys are b'data' as in the real files"
    dm = module(data_dir=tmp_path, seed=0)
    splits = dm.load()
    assert splits.x_train.shape == (30, 3, 32, 32) and splits.x_test.shape == (8, 3, 32, 32)
    assert splits.x_train.dtype == torch.float32 and splits.y_test.dtype == torch.long
    assert splits.y_train.tolist() == arrays["y_train"].tolist()
    assert splits.y_test.tolist() == arrays["y_test"].tolist()
    written = torch.from_numpy(arrays["x_test"]).float().view(-1, 3, 32, 32)  # R, G, B planes
    assert torch.allclose(dm.normalization.denormalize(splits.x_test), written, atol=1e-3)
    dm.setup()
    assert (len(dm.y_train), len(dm.y_val)) == (27, 3)
    assert isinstance(dm.augment(), RandomCropFlip)


def test_cifar_splits_subsets_and_augmented_batches_are_seeded(
    tmp_path: Path, skip_cifar_md5: None
) -> None:
    write_cifar(tmp_path, hundred=False, per_file=20)  # 100 training images
    a, b, c = (CIFAR10DataModule(data_dir=tmp_path, seed=s, batch_size=16) for s in (0, 0, 1))
    for dm in (a, b, c):
        dm.setup()
    assert len(a.y_val) == 10 and len(a.y_train) == 90
    assert torch.equal(a.x_val, b.x_val) and not torch.equal(a.x_val, c.x_val)
    xa, ya = next(iter(a.train_dataloader()))
    xb, yb = next(iter(b.train_dataloader()))
    xc, _ = next(iter(c.train_dataloader()))
    assert xa.shape == (16, 3, 32, 32)
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and not torch.equal(xa, xc)
    stream_a, stream_b = a.allocation_batches(8)(), b.allocation_batches(8)()
    for _ in range(2):
        (x1, y1), (x2, y2) = next(stream_a), next(stream_b)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # augmented: training batches are not plain copies of stored images
    stored = {tuple(img.flatten()[:64].tolist()) for img in a.x_train}
    assert any(tuple(img.flatten()[:64].tolist()) not in stored for img in xa)
    # train_subset 12: the first 12 of the same shuffle, round(0.1 * 12) = 1 of them validates.
    sub = CIFAR10DataModule(data_dir=tmp_path, seed=0, train_subset=12)
    sub.setup()
    assert (len(sub.y_train), len(sub.y_val)) == (11, 1)
    assert torch.equal(sub.x_val, a.x_val[:1])
    assert torch.equal(sub.x_train, torch.cat([a.x_val[1:], a.x_train[:2]]))


def test_cifar_md5_check_is_kept(tmp_path: Path) -> None:
    write_cifar(tmp_path, hundred=False)
    with pytest.raises(BenchError, match="md5"):
        CIFAR10DataModule(data_dir=tmp_path).load()


@pytest.mark.parametrize(
    "module, archive",
    [
        (CIFAR10DataModule, "cifar-10-python.tar.gz"),
        (CIFAR100DataModule, "cifar-100-python.tar.gz"),
    ],
)
def test_cifar_missing_says_where_and_how(tmp_path: Path, module: type, archive: str) -> None:
    with pytest.raises(BenchError) as error:
        module(data_dir=tmp_path).load()
    message = str(error.value)
    assert str(tmp_path / module.torchvision_class.base_folder) in message
    assert "--download" in message and archive in message and "\n" not in message


# --------------------------------------------------------------------------------------------
# Tiny ImageNet (directory tree of JPEGs)


def test_tiny_imagenet_reads_tree_and_validates_on_official_val(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    val_wnids = write_tiny(tmp_path)
    dm = TinyImageNetDataModule(data_dir=tmp_path, seed=0, batch_size=4)
    dm.setup()
    index = {wnid: i for i, wnid in enumerate(sorted(WNIDS))}
    assert dm.x_train.shape == (13, 3, 64, 64) and dm.x_train.dtype == torch.float32
    assert sorted(dm.y_train.tolist()) == sorted([0] * 4 + [1] * 4 + [2] * 4 + [index[WNIDS[0]]])
    assert dm.y_val.tolist() == [index[w] for w in val_wnids] and torch.equal(dm.x_val, dm.x_test)
    assert not dm.has_test_labels
    colours = dm.normalization.denormalize(dm.x_val).mean(dim=(2, 3))
    expected = torch.tensor([COLOURS[w] for w in val_wnids], dtype=torch.float32)
    assert torch.allclose(colours, expected, atol=4), "solid JPEG colours survive, as RGB"
    xt, yt = next(iter(dm.test_dataloader()))
    xv, yv = next(iter(dm.val_dataloader()))
    assert torch.equal(xt, xv) and torch.equal(yt, yv)
    assert isinstance(dm.augment(), RandomCropFlip)
    # The decoded images are cached; a second load does not decode again.
    assert len(list((tmp_path / "tiny-imagenet-200").glob("paibench-uint8-*.pt"))) == 1

    def fail(paths: list[Path]) -> torch.Tensor:
        raise AssertionError("decoded again")

    monkeypatch.setattr("bench.data.tiny_imagenet.decode_images", fail)
    again = TinyImageNetDataModule(data_dir=tmp_path / "tiny-imagenet-200", train_subset=5)
    again.setup()
    assert len(again.y_train) == 5 and torch.equal(again.x_val, dm.x_val)


def test_tiny_imagenet_missing_says_where_and_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(BenchError) as error:
        TinyImageNetDataModule(data_dir=tmp_path).load()
    message = str(error.value)
    assert str(tmp_path / "tiny-imagenet-200") in message and "tiny-imagenet-200.zip" in message
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "root"))
    with pytest.raises(BenchError, match=str(tmp_path / "root" / "tiny-imagenet-200")):
        make_datamodule("tiny-imagenet").load()
