"""The density grid and grid expansion, defined once."""

from __future__ import annotations

from bench.errors import BenchError

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


def parse_densities(values: list[str]) -> list[float]:
    """``["grid"]`` -> the paper grid; otherwise floats in (0, 1], named if invalid."""
    densities: list[float] = []
    for value in values:
        for item in value.split(","):
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
    return list(dict.fromkeys(densities))
