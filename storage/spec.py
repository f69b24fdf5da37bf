"""How a method run with options is spelled, in one place (queries, configs and the CLI)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def method_spec(method: str, options: Mapping[str, Any] | None) -> str:
    """``method`` alone, or ``method:key=value,...`` (keys sorted) when it ran with options.

    Runs store only the options that differ from the method's defaults, so the runs of one
    method at its defaults share one label, and ``epf:within=filter`` never averages into
    ``epf``. The CLI spells a method the same way.
    """
    if not options:
        return method
    return f"{method}:" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))
