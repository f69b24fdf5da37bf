"""Installed plugins of one entry-point group: the loading every registry shares.

Architectures, data sets (and methods, with their own older loader) are registries with the
same three ways in; loading an entry point, naming a failure, and labelling what its import
registered is the same for each, only the handling of what it names differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points


def installed(
    group: str,
    registry: Mapping[str, object],
    set_origin: Callable[[str, str], None],
    error: Callable[[str], Exception],
) -> Iterator[tuple[EntryPoint, object, str]]:
    """Load every entry point of ``group``; yield ``(entry point, loaded object, origin)``.

    Names its import added to ``registry`` are labelled ``entry point VALUE`` first; a failing
    entry point raises ``error`` with a one-line message naming it and its group.
    """
    for ep in entry_points(group=group):
        origin = f"entry point {ep.value}"
        before = set(registry)
        try:
            loaded = ep.load()
        except Exception as failure:
            raise error(
                f"entry point {ep.name} = {ep.value} of group {group} failed to load: "
                f"{type(failure).__name__}: {failure}"
            ) from failure
        for added in set(registry) - before:
            set_origin(added, origin)
        yield ep, loaded, origin
