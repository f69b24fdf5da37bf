"""How many torch threads a run gets: the cores that are free when it starts, never more.

On a CPU shared with other processes, torch's default (one thread per core, OpenMP threads that
spin while they wait) collapsed: beside a few busy processes the README's main job ran 4-8x
slower than with one thread, burning CPU in the spin-waits (docs/performance.md, "A busy
machine"). Two measures keep a run at its fair share: OpenMP's passive wait policy, set before
torch starts (:func:`prepare_environment`), and a thread count chosen per run from the idle cores
measured just before it starts (:func:`free_cores`).
"""

from __future__ import annotations

import os
import time

SAMPLE_SECONDS = 0.1


def prepare_environment() -> None:
    """Settings that must be in the environment before torch starts (unless the user chose).

    OpenMP threads sleep instead of spinning while they wait (see above); cuBLAS gets the
    fixed workspace its deterministic mode needs (PyTorch's reproducibility notes), so GPU
    matrix products give the same bits run after run. Harmless where there is no GPU.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat; None where there is no /proc."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def free_cores(sample: float = SAMPLE_SECONDS) -> float:
    """Idle cores over the next ``sample`` seconds (the load average where /proc is missing)."""
    total_cores = cores()
    before = _cpu_times()
    if before is None:
        return max(0.0, total_cores - os.getloadavg()[0])
    time.sleep(sample)
    after = _cpu_times()
    assert after is not None
    idle, total = after[0] - before[0], after[1] - before[1]
    return total_cores * idle / total if total > 0 else float(total_cores)


def threads_for_run(limit: int | None = None) -> int:
    """Threads for a run starting now: the free cores, rounded, at least 1, at most ``limit``."""
    ceiling = limit or cores()
    return max(1, min(ceiling, round(free_cores())))
