"""``bench methods`` without importing torch: the printed listing, cached per source state.

Listing methods means importing their classes, which import torch (1.7 s on this project's
machine, most of ``bench methods``' start-up). The printed table depends only on the method
modules' source and the installed ``paibench.methods`` entry points, so it is kept in
``~/.cache/paibench`` (or ``$PAIBENCH_CACHE_DIR``) under a key made of those: a changed file, a
new entry point or another paibench version makes a new key, and a run with ``--plugin`` never
uses the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

CACHE_ENV = "PAIBENCH_CACHE_DIR"
METHODS_SOURCE = Path(__file__).resolve().parents[1] / "methods"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/paibench").expanduser()


def source_key() -> str:
    """A digest of what the methods listing depends on."""
    digest = hashlib.sha256()
    for path in sorted(METHODS_SOURCE.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    for ep in sorted(metadata.entry_points(group="paibench.methods"), key=lambda e: e.name):
        digest.update(f"ep:{ep.name}={ep.value}\n".encode())
    with contextlib.suppress(metadata.PackageNotFoundError):
        digest.update(metadata.version("paibench").encode())
    return digest.hexdigest()[:16]


def cached_text(name: str, make: Callable[[], str]) -> str:
    """The text ``make`` returns, read from the cache when the sources have not changed."""
    path = cache_dir() / f"{name}-{source_key()}.txt"
    try:
        return path.read_text()
    except OSError:
        pass
    text = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(text)
        temporary.replace(path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass  # a read-only home: list without caching
    return text
