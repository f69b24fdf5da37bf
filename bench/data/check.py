"""The check a command makes before it starts a grid: can each data set's files be loaded?"""

from __future__ import annotations

from pathlib import Path

from bench.data.common import one_line
from bench.data.registry import make_datamodule
from bench.errors import BenchError


def check_available(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = False,
    train_subset: int | None = None,
) -> None:
    """Raise, before anything is trained or stored, the one-line BenchError a run of data set
    ``name`` would raise while loading its data; return None when the data is usable.

    Looks the name up, reads the set's files once (with ``download``, fetching them as a run
    would), checks them (missing, unreadable or corrupt files, each named; shapes or labels
    that do not match the registered ones) and, when ``train_subset`` is given, that it fits
    the training split. Nothing is kept: a run loads the data again. Digits takes tens of
    milliseconds (scikit-learn's file is read once per process and shared with the runs);
    Fashion-MNIST and CIFAR read their files without the normalised float copy; Tiny ImageNet
    decodes its JPEGs once and writes the cache that every run then reads. An error that is not
    a BenchError (a plugin loader's own) becomes one naming the data set.
    """
    module = make_datamodule(name, data_dir=data_dir, download=download, train_subset=train_subset)
    try:
        examples = module.verify()
    except BenchError:
        raise
    except Exception as error:
        raise BenchError(
            f"data set {name!r} failed to load: {type(error).__name__}: {one_line(error)}"
        ) from error
    module.used_examples(examples)
