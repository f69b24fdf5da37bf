"""Iterative schedules (methods-reference.md s.1 rule 3): the density and the count of each step.

With ``T`` steps, step ``t = 1..T`` keeps ``k_t = round(d_t * N)`` weights, ``d_t = d**(t/T)``
(exponential, the default everywhere) or ``1 - (1-d)*t/T`` (linear), and ``k_T`` is forced to
``K = round(d * N)``. ``d`` is the *requested* density (``Budget.density``), not ``K / N``: the
two can differ enough to move an intermediate ``k_t`` by one.
"""

from __future__ import annotations

from typing import Literal

Schedule = Literal["exp", "linear"]


def densities(density: float, steps: int, schedule: Schedule = "exp") -> list[float]:
    """Density of each step ``t = 1..T``: ``d**(t/T)`` (exp) or ``1 - (1-d)*t/T`` (linear)."""
    if steps < 1:
        raise ValueError(f"an iterative schedule needs at least 1 step, got {steps}")
    if schedule == "exp":
        return [density ** (t / steps) for t in range(1, steps + 1)]
    if schedule == "linear":
        return [1.0 - (1.0 - density) * t / steps for t in range(1, steps + 1)]
    raise ValueError(f"unknown schedule {schedule!r} (valid: exp, linear)")


def step_counts(density: float, steps: int, total: int, schedule: Schedule = "exp") -> list[int]:
    """``k_t = round(d_t * N)`` per step, with ``k_T`` forced to ``K = round(d * N)`` (s.1 rule 3).

    Non-increasing and never below ``K``; the last entry is exactly what ``allocate`` checks.
    """
    counts = [min(total, round(d_t * total)) for d_t in densities(density, steps, schedule)]
    counts[-1] = round(density * total)
    for t in range(len(counts) - 2, -1, -1):  # guard against float noise in d**(t/T)
        counts[t] = max(counts[t], counts[t + 1])
    return counts
