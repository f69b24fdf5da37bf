"""Training stored runs again, and telling results from crashes once a grid has run.

A failed run is a result when its method could not allocate (``AllocationFailed``, as the paper
reports FORCE at extreme densities); any other exception (in training, or in a plugin's code)
is a crash: recorded all the same, but ``bench run`` exits 1 and says how many.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.config import RunConfig
from bench.errors import BenchError
from bench.settings import Reruns

RESULT_FAILURES = frozenset({"AllocationFailed"})


def older_than(version: str) -> Callable[[str | None], bool]:
    """Whether a recorded paibench version is older than ``version`` (unknown counts as older)."""
    from packaging.version import InvalidVersion, Version

    try:
        limit = Version(version)
    except InvalidVersion:
        raise BenchError(
            f"bad version {version!r} for --rerun-older-than (valid: a version such as 0.2.0)"
        ) from None

    def older(recorded: str | None) -> bool:
        try:
            return recorded is None or Version(recorded) < limit
        except InvalidVersion:
            return True

    return older


def reopen_runs(engine, configs: Sequence[RunConfig], reruns: Reruns, runs_dir: Path) -> int:
    """Hand back the grid's runs that ``reruns`` selects, with their checkpoints removed."""
    import storage

    if reruns.retry_failed is None and reruns.rerun_older_than is None:
        return 0
    older = older_than(reruns.rerun_older_than) if reruns.rerun_older_than else None
    hashes = storage.reopen(
        engine,
        [c.config_hash() for c in configs],
        failed_reason=reruns.retry_failed,
        older_than=older,
    )
    for config_hash in hashes:  # a fresh attempt must not resume the old one's checkpoint
        shutil.rmtree(runs_dir / config_hash, ignore_errors=True)
    return len(hashes)


def crashed(engine, hashes: Sequence[str]) -> int:
    """Failed runs among ``hashes`` whose last failure was not a result of their method."""
    import storage

    if not hashes:
        return 0
    where = storage.RunFilter(config_hashes=list(hashes), statuses=["failed"])
    failures = storage.failures(engine, where)
    if failures.empty:
        return 0
    last = failures.groupby("run_id").tail(1)
    return int((~last["exception_type"].isin(RESULT_FAILURES)).sum())
