"""The grid spec: the lists that define a grid, resolved once into validated RunConfigs.

``GridSpec`` is what ``bench run`` and ``bench worker`` are given (its fields are their grid
flags) and what a study's block is. :meth:`GridSpec.configs` checks every name and value
before anything runs (so a bad input never creates a file), resolves each config's budget
once, and returns configs whose hash says what will really run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields, replace
from typing import Any

from bench.config import RunConfig
from bench.errors import BenchError
from bench.options import int_list, option, split_names

# The 1-2-5 grid from 0.1 down to 0.0001: every density the paper reports (its figures 2-3, 9-10).
DENSITY_GRID: tuple[float, ...] = (
    0.1,
    0.05,
    0.02,
    0.01,
    0.005,
    0.002,
    0.001,
    0.0005,
    0.0002,
    0.0001,
)
BASELINE_METHOD = "dense"
MethodSpec = tuple[str, dict[str, Any]]


def parse_densities(values: str | list[str] | tuple[str, ...]) -> tuple[float, ...]:
    """``["grid"]`` -> the paper grid; otherwise floats in (0, 1], named if invalid.

    An empty list is an error: a grid of the dense baseline alone is asked for with
    ``--methods dense``.
    """
    densities: list[float] = []
    for value in [values] if isinstance(values, str) else values:
        for item in str(value).split(","):
            item = item.strip()
            if not item:
                continue
            if item == "grid":
                densities.extend(DENSITY_GRID)
                continue
            try:
                density = float(item)
            except ValueError:
                raise BenchError(
                    f"bad density {item!r} (valid: 'grid' or numbers in (0, 1])"
                ) from None
            if not 0.0 < density <= 1.0:
                raise BenchError(f"density {item} is outside (0, 1] (valid: 'grid' or (0, 1])")
            densities.append(density)
    if not densities:
        raise BenchError("no density given (valid: 'grid' or numbers in (0, 1])")
    return tuple(dict.fromkeys(densities))


def parse_methods(values: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Method specs as given: space-separated, and comma-separated where no options follow."""
    items: list[str] = []
    for value in [values] if isinstance(values, str) else values:
        items.extend([value] if ":" in value else split_names([value]))
    if not items:
        raise BenchError("no method given (valid: 'all' or names from 'bench methods')")
    return tuple(items)


def _names(values: Any) -> tuple[str, ...]:
    return split_names([values] if isinstance(values, str) else values)


@dataclass(frozen=True)
class GridSpec:
    """archs x datasets x seeds x (methods x densities, plus the dense baseline).

    ``settings`` are the RunConfig fields every run of the grid shares (preset, budget, where
    it runs); their names are checked against RunConfig's.
    """

    methods: tuple[str, ...] = option(
        ("all",),
        "methods as name or name:key=value,... ('all' = every registered method); the dense "
        "baseline is always added",
        nargs="+",
        metavar="METHOD",
        parse=parse_methods,
    )
    densities: tuple[float, ...] = option(
        ("grid",),
        "densities in (0, 1], or 'grid' for the paper's 1-2-5 grid 0.1 ... 0.0001",
        nargs="+",
        metavar="D",
        parse=parse_densities,
    )
    seeds: tuple[int, ...] = option(
        (0,), "seeds, comma- or space-separated", nargs="+", metavar="SEED", parse=int_list
    )
    archs: tuple[str, ...] | None = option(
        None,
        "architectures (default: each data set's default model; see 'bench archs')",
        aliases=("--arch",),
        nargs="+",
        metavar="ARCH",
        parse=_names,
    )
    datasets: tuple[str, ...] = option(
        ("digits",),
        "data sets (see 'bench datasets')",
        aliases=("--dataset",),
        nargs="+",
        metavar="DATASET",
        parse=_names,
    )
    baseline: bool = True
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = {f.name for f in fields(RunConfig)}
        unknown = sorted(set(self.settings) - known)
        if unknown:
            raise BenchError(f"unknown run settings {unknown} (valid: {sorted(known)})")

    def with_settings(self, **settings: Any) -> GridSpec:
        """The same grid with some shared settings replaced."""
        return replace(self, settings={**self.settings, **settings})

    def method_specs(self) -> list[MethodSpec]:
        """``(name, options)`` per method spec, 'all' expanded to every registered method."""
        import methods

        specs: list[MethodSpec] = []
        for item in self.methods:
            try:
                name, options = methods.parse_spec(item)
                if name == "all":
                    specs.extend((n, {}) for n in methods.available())
                else:
                    methods.method_class(name)
                    specs.append((name, options))
            except (methods.UnknownMethod, ValueError) as error:
                raise BenchError(str(error)) from None
        return specs

    def arch_names(self) -> tuple[str, ...]:
        """The archs given, else each data set's default architecture."""
        if self.archs:
            return tuple(self.archs)
        from bench.data import dataset_spec

        return tuple(dict.fromkeys(dataset_spec(d).default_arch for d in self.datasets))

    def size(self) -> int:
        """Runs in the grid before de-duplication (dense baselines included)."""
        per_seed = len(self.method_specs()) * len(self.densities) + (1 if self.baseline else 0)
        return len(self.arch_names()) * len(self.datasets) * len(self.seeds) * per_seed

    def configs(self) -> list[RunConfig]:
        """Every run of the grid, validated and resolved, without duplicates, in grid order."""
        from bench.resolve import resolve

        specs = self.method_specs()
        # A grid without methods is the dense baseline alone (it needs no density).
        densities = parse_densities([str(d) for d in self.densities]) if specs else []
        unique: dict[str, RunConfig] = {}
        for arch, dataset, seed in itertools.product(self.arch_names(), self.datasets, self.seeds):
            runs: list[tuple[str, dict[str, Any], float]] = []
            if self.baseline:
                runs.append((BASELINE_METHOD, {}, 1.0))
            runs.extend(
                (method, options, density)
                for (method, options), density in itertools.product(specs, densities)
                if method != BASELINE_METHOD
            )
            for method, options, density in runs:
                config = RunConfig(
                    arch, dataset, method, density, seed, dict(options), **self.settings
                )
                config = resolve(config)
                unique.setdefault(config.config_hash(), config)
        return list(unique.values())
