"""What the results are made of: the code versions, libraries and devices of the runs shown, and
the series (arch x data set x budget x method) whose runs were made by different code versions.

Every function takes :func:`storage.runs`'s frame; runs recorded before provenance existed have
None in its provenance columns and read as "not recorded".
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from reports.tables import SERIES_KEYS, budgeted

NOT_RECORDED = "not recorded"  # a run recorded before provenance existed
NONE = "none"  # a run with provenance that has no such thing (CUDA on a CPU-only torch)
COMMIT_LENGTH = 12  # hex digits of a git commit shown
# storage.runs column -> the column of versions_table
VERSION_COLUMNS = {
    "paibench_version": "paibench",
    "git_commit": "git commit",
    "python_version": "Python",
    "torch_version": "torch",
    "cuda_version": "CUDA",
    "device": "device",
}
MIXED_COLUMNS = [*SERIES_KEYS, "code versions", "runs"]


def _value(value: object) -> str | None:
    """A provenance cell as text, None when not recorded (None, NaN or empty)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return str(value).strip() or None


def _column(runs: pd.DataFrame, name: str) -> list[str | None]:
    if name not in runs.columns:
        return [None] * len(runs)
    return [_value(v) for v in runs[name]]


def _recorded(runs: pd.DataFrame) -> list[bool]:
    """Whether each run has provenance at all (a version or a commit)."""
    versions, commits = _column(runs, "paibench_version"), _column(runs, "git_commit")
    return [v is not None or c is not None for v, c in zip(versions, commits)]


def _shown(runs: pd.DataFrame, name: str) -> list[str]:
    """A provenance column as shown: the value, ``none`` or ``not recorded``."""
    return [
        v if v is not None else NONE if recorded else NOT_RECORDED
        for v, recorded in zip(_column(runs, name), _recorded(runs))
    ]


def _is_dirty(value: object) -> bool:
    text = _value(value)
    return text is not None and text.lower() not in ("false", "0", "no")


def commit_label(commit: object, dirty: object = None) -> str:
    """``0123456789ab`` (``0123456789ab (dirty)`` when the work tree had changes)."""
    text = _value(commit)
    if text is None:
        return NOT_RECORDED
    return text[:COMMIT_LENGTH] + (" (dirty)" if _is_dirty(dirty) else "")


def code_versions(runs: pd.DataFrame) -> pd.Series:
    """Each run's code version, ``paibench 0.4.0 at 0123456789ab`` (the dirty flag apart: two
    runs of one commit are the same version); ``not recorded`` for runs without provenance."""
    labels = []
    for version, commit in zip(_column(runs, "paibench_version"), _column(runs, "git_commit")):
        if version is None and commit is None:
            labels.append(NOT_RECORDED)
        else:
            labels.append(f"paibench {version or '?'} at {commit_label(commit)}")
    return pd.Series(labels, index=runs.index, dtype=object)


def versions_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs per paibench version, git commit (with its dirty flag), Python, torch, CUDA and
    device: one row per combination, the most runs first."""
    columns = list(VERSION_COLUMNS.values())
    if runs.empty:
        return pd.DataFrame(columns=[*columns, "runs"]).set_index(columns[:2])
    frame = pd.DataFrame({label: _shown(runs, name) for name, label in VERSION_COLUMNS.items()})
    dirty = _column(runs, "git_dirty")
    frame["git commit"] = [
        commit_label(c, d) for c, d in zip(_column(runs, "git_commit"), dirty)
    ]  # fmt: skip
    counts = frame.groupby(columns).size().rename("runs").reset_index()
    counts = counts.sort_values(["runs", *columns], ascending=[False, *[True] * len(columns)])
    return counts.set_index(columns[:2])


def _joined(values: Iterable[str]) -> str:
    return ", ".join(sorted(set(values))) or NOT_RECORDED


def provenance_summary(runs: pd.DataFrame) -> str:
    """One sentence naming every version the runs are made of."""
    commits = _joined(
        commit_label(c, d) for c, d in zip(_column(runs, "git_commit"), _column(runs, "git_dirty"))
    )
    return (
        f"paibench {_joined(_shown(runs, 'paibench_version'))} (git commits {commits}); "
        f"Python {_joined(_shown(runs, 'python_version'))}; "
        f"torch {_joined(_shown(runs, 'torch_version'))}; "
        f"CUDA {_joined(_shown(runs, 'cuda_version'))}; "
        f"devices {_joined(_shown(runs, 'device'))}."
    )


def mixed_versions(runs: pd.DataFrame) -> pd.DataFrame:
    """The series (arch, dataset, budget, method) whose runs were made by more than one code
    version (paibench version or git commit; runs without provenance count as one more).

    Columns: arch, dataset, budget, method, code versions (each with its run count), runs.
    """
    if runs.empty:
        return pd.DataFrame(columns=MIXED_COLUMNS)
    frame = budgeted(runs).assign(code=code_versions(runs))
    rows = []
    for key, group in frame.groupby(SERIES_KEYS, sort=True):
        counts = group["code"].value_counts()
        if len(counts) > 1:
            versions = "; ".join(
                f"{v} ({n} run{'s' if n != 1 else ''})" for v, n in sorted(counts.items())
            )
            rows.append([*key, versions, len(group)])
    return pd.DataFrame(rows, columns=MIXED_COLUMNS)
