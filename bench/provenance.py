"""Provenance of a run: which code trained it, with which software, on which machine.

Researchers ask of every number whether it was re-run after a method fix; the paibench version
and the git commit (with a flag for uncommitted changes) of the code answer that, and
``bench run --rerun-older-than VERSION`` re-trains what older code recorded.
"""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from storage.rows import ProvenanceRow

SOURCE = Path(__file__).resolve().parents[1]


def paibench_version() -> str:
    """The installed distribution's version (``0.0.0`` when run from an uninstalled tree)."""
    try:
        return metadata.version("paibench")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the source tree this code runs from; ``(None, None)`` outside git.

    Dirty means tracked files differ from the commit (untracked files do not count). Read once
    per process.
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def device_name(device: torch.device) -> str:
    """The device a run trains on, by name (``cpu (x86_64)``, ``NVIDIA H200 (cuda:0)``)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"cpu ({platform.machine()})"


def provenance(device: torch.device, num_classes: int | None) -> ProvenanceRow:
    """Everything :class:`~storage.rows.ProvenanceRow` holds, read now."""
    commit, dirty = git_state()
    return ProvenanceRow(
        paibench_version=paibench_version(),
        git_commit=commit,
        git_dirty=dirty,
        python_version=platform.python_version(),
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        device=device_name(device),
        host=socket.gethostname(),
        threads=torch.get_num_threads(),
        num_classes=num_classes,
    )
