"""What ``bench methods``, ``bench archs`` and ``bench datasets`` print, as pandas DataFrames.

One row per registered name, with ``origin`` (built-in, entry point or plugin file) in each, so
the three listings read alike. Load plugin files (:func:`bench.plugins.load_file`) first: the
frames show what is registered when they are called (entry points are loaded here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import architectures


# Shapes an architecture's parameters are counted at, first accepted wins: the paper's CIFAR
# shape first (Table 2's counts), then the other built-in data sets' shapes.
STANDARD_SHAPES: tuple[tuple[int, int, int], ...] = (
    (3, 32, 32),
    (1, 28, 28),
    (1, 8, 8),
    (3, 64, 64),
)
COUNT_CLASSES = 10  # only the classifier depends on the class count


def methods_frame() -> pd.DataFrame:
    """Columns method, needs_data, options (``name=default``, ...), origin, description."""
    import methods

    rows = []
    for name in methods.available():
        cls = methods.method_class(name)
        options = ", ".join(o.describe() for o in methods.options_of(cls)) or "-"
        rows.append(
            {
                "method": name,
                "needs_data": cls.needs_data,
                "options": options,
                "origin": cls.origin,
                "description": cls.description,
            }
        )
    return pd.DataFrame(rows, columns=["method", "needs_data", "options", "origin", "description"])


def counting_shape(spec: architectures.ArchSpec) -> tuple[int, int, int] | None:
    """The first of :data:`STANDARD_SHAPES`, then of the registered data sets' shapes, that
    ``spec`` accepts; None when it accepts none of them."""
    import bench.data

    shapes = dict.fromkeys(
        [
            *STANDARD_SHAPES,
            *(bench.data.dataset_spec(n).input_shape for n in bench.data.available()),
        ]
    )
    return next((shape for shape in shapes if spec.accepts(shape)), None)


ARCH_COLUMNS = [
    "arch",
    "weights",
    "bias+BN",
    "total",
    "prunable layers",
    "counted at",
    "accepts",
    "origin",
    "description",
]


def archs_frame(num_classes: int = COUNT_CLASSES) -> pd.DataFrame:
    """Table 2's counts per architecture: prunable weights, bias+BN, total, prunable layers.

    Counted on the meta device (shapes only: even ResNet50 costs no memory or init time) for
    ``num_classes`` classes at :func:`counting_shape`. An architecture that accepts none of the
    known shapes, or whose builder fails on the meta device, keeps its row with empty counts and
    the reason in ``counted at``, so one broken plugin never hides the others.
    """
    import architectures

    rows = []
    for name in architectures.available():
        spec = architectures.spec(name)
        row: dict[str, object] = dict.fromkeys(ARCH_COLUMNS)
        row |= {
            "arch": name,
            "accepts": spec.accepts_text,
            "origin": spec.origin,
            "description": spec.description,
        }
        shape = counting_shape(spec)
        if shape is None:
            row["counted at"] = "no known input shape"
        else:
            try:
                count = architectures.summarize(name, num_classes, input_shape=shape)
            except Exception as error:  # a plugin's builder: report, do not hide the others
                row["counted at"] = f"failed: {type(error).__name__}: {error}"
            else:
                row |= {
                    "weights": count.weights,
                    "bias+BN": count.other,
                    "total": count.total,
                    "prunable layers": count.prunable_layers,
                    "counted at": "x".join(map(str, shape)),
                }
        rows.append(row)
    frame = pd.DataFrame(rows, columns=ARCH_COLUMNS)
    for column in ("weights", "bias+BN", "total", "prunable layers"):
        frame[column] = frame[column].astype("Int64")  # a row without counts holds <NA>
    return frame


DATASET_COLUMNS = [
    "dataset",
    "input shape",
    "classes",
    "default arch",
    "default epochs",
    "batches per step",
    "origin",
    "description",
]


def datasets_frame() -> pd.DataFrame:
    """One row per data set, from its registered spec alone (nothing is loaded or downloaded).

    ``default epochs`` is None where the preset's epochs apply; ``batches per step`` is what
    FORCE and Iter-SNIP average per pruning step (Table 3). Train/test sizes are not listed:
    they are known only after loading the files.
    """
    import bench.data

    rows = []
    for name in bench.data.available():
        spec = bench.data.dataset_spec(name)
        rows.append(
            {
                "dataset": name,
                "input shape": "x".join(map(str, spec.input_shape)),
                "classes": spec.num_classes,
                "default arch": spec.default_arch,
                "default epochs": spec.default_epochs,
                "batches per step": spec.batches_per_step,
                "origin": spec.origin,
                "description": spec.description,
            }
        )
    frame = pd.DataFrame(rows, columns=DATASET_COLUMNS)
    frame["default epochs"] = frame["default epochs"].astype("Int64")  # None stays <NA>
    return frame
