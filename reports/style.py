"""Names, colours and number formats shared by every table and figure, defined once.

The same method has the same colour (and legend label) in every figure: the known methods have
fixed colours, methods from plugins take the next free colours in name order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

Color = tuple[float, float, float]

DENSE = "dense"  # the dense baseline's method name; it runs at density 1
DENSE_DENSITY = 1.0
DENSE_COLOR: Color = (0.0, 0.0, 0.0)

# Legend labels, as the paper names the methods; other methods keep their registry name.
METHOD_LABELS = {
    "dctps": "DCTpS",
    "dense": "Dense",
    "epf": "Sparse (EPF)",
    "epl": "Sparse (EPL)",
    "force": "FORCE",
    "grasp": "GraSP",
    "itersnip": "Iter-SNIP",
    "random": "Sparse (uniform)",
    "snip": "SNIP",
    "synflow": "SynFlow",
}
# Index into seaborn's colour-blind palette of each known method (7, grey, is left out).
# Orange, vermilion and brown look alike in a small figure, so they go to methods drawn far
# apart in the paper; EPL, the support DCTpS draws from, is DCTpS's light blue.
_KNOWN_COLOR_INDEX = {
    "dctps": 0,
    "synflow": 1,
    "force": 2,
    "epf": 3,
    "random": 4,
    "snip": 5,
    "grasp": 6,
    "itersnip": 8,
    "epl": 9,
}
# A marker per known method, so that lines stay apart in grey print and for colour-blind
# readers; "X" is kept for failures and "v" for zeros at the bottom of log axes.
METHOD_MARKERS = {
    "dctps": "o",
    "synflow": "s",
    "force": "D",
    "epf": "<",
    "random": ">",
    "snip": "P",
    "grasp": "*",
    "itersnip": "h",
    "epl": "^",
}
DEFAULT_MARKER = "o"
# Classes of the built-in data sets, for chance accuracy of runs recorded before runs stored
# their class count (storage.runs' ``num_classes``, which comes first: see chance_accuracy).
# Their home is the data set registry (bench.data, DatasetSpec.num_classes), which reports may
# not import (design.md: reports -> storage only); tests/test_data.py checks this copy against
# the registry so that the two cannot drift.
DATASET_CLASSES = {
    "digits": 10,
    "fashion-mnist": 10,
    "cifar10": 10,
    "cifar100": 100,
    "tiny-imagenet": 200,
}
FALLBACK_CLASSES = 10


def method_label(method: str) -> str:
    """The legend label of ``method``."""
    return METHOD_LABELS.get(method, method)


def method_marker(method: str) -> str:
    """The marker of ``method``'s line (plugins' methods: a circle)."""
    return METHOD_MARKERS.get(method, DEFAULT_MARKER)


def method_order(methods: Iterable[str]) -> list[str]:
    """``methods`` sorted by name, the dense baseline first."""
    return sorted(set(methods), key=lambda m: (m != DENSE, m))


def method_palette(methods: Iterable[str]) -> dict[str, Color]:
    """A colour per method: fixed for known methods, the next free colours (by name) for others."""
    import seaborn as sns  # here, so that importing the tables does not load seaborn

    known = sns.color_palette("colorblind", 10)
    palette: dict[str, Color] = {DENSE: DENSE_COLOR}
    for method, index in _KNOWN_COLOR_INDEX.items():
        palette[method] = tuple(known[index])
    used = set(palette.values())
    spare = [tuple(c) for c in (*sns.color_palette("dark", 10), *sns.color_palette("tab20", 20))]
    free = iter([c for c in spare if c not in used])
    for method in sorted(set(methods) - set(palette)):
        palette[method] = next(free, (0.5, 0.5, 0.5))
    return palette


def density_palette(densities: Iterable[float]) -> dict[float, Color]:
    """A colour per density, dark (sparse) to light (dense), the same in every panel."""
    import seaborn as sns

    ordered = sorted(set(densities))
    colors = sns.color_palette("viridis", max(len(ordered), 1))
    return {d: tuple(c) for d, c in zip(ordered, colors)}


def format_density(density: float) -> str:
    """``0.001`` -> ``0.1%``: densities as the paper writes them."""
    return f"{100 * density:.6g}%"


def density_ticks(densities: Sequence[float]) -> list[float]:
    """Decades (10%, 1%, 0.1%, ...) spanning ``densities``; the densities themselves if < 2."""
    low, high = min(densities), max(densities)
    decades = [
        10.0**e
        for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        if low <= 10.0**e * (1 + 1e-9) and 10.0**e <= high * (1 + 1e-9)
    ]
    return decades if len(decades) >= 2 else sorted(set(densities))


def chance_accuracy(dataset: str, num_classes: int | None = None) -> float:
    """1 / classes of ``dataset``: ``num_classes`` when the caller has it (a run's recorded
    class count), else the built-in count, else 10 (a plugin's data set the table cannot know)."""
    if num_classes is not None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        return 1.0 / num_classes
    return 1.0 / DATASET_CLASSES.get(dataset, FALLBACK_CLASSES)


def slug(*parts: str) -> str:
    """A file-name-safe name made of ``parts``."""
    text = "_".join(parts)
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


UNKNOWN_BUDGET = "budget not recorded"


def budget_name(budget: object) -> str:
    """A training budget's label as shown (storage.budget_label's text, or a placeholder)."""
    if budget is None or (isinstance(budget, float) and math.isnan(budget)):
        return UNKNOWN_BUDGET
    return str(budget).strip() or UNKNOWN_BUDGET


def budget_slug(budget: object) -> str:
    """``adam, 10 epochs, 5,000 images`` -> ``adam-10-epochs-5000-images``, for file names."""
    text = re.sub(r"(?<=\d),(?=\d)", "", budget_name(budget).lower())
    return re.sub(r"[^a-z0-9.]+", "-", text).strip("-") or "budget"
