"""One loader for plugins: methods, architectures and data sets come in the same three ways.

A plugin file (``--plugin my_plugin.py``) is executed once, so that every
``@methods.register``, ``@architectures.register`` and ``@bench.data.register`` in it runs;
:func:`load_file` returns what it added and labels each with ``plugin <file>``.
:func:`load_entry_points` imports the installed packages of the three entry-point groups
(``paibench.methods``, ``paibench.architectures``, ``paibench.datasets``), each through its own
registry's loader (which runs once per process).

A file that does not exist, does not parse or fails while running is a one-line
:class:`~bench.errors.BenchError` naming the file (and the line, when there is one), so the
CLI reports it like any other bad argument.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

import architectures
import bench.data
import methods
from bench.errors import BenchError

# The three entry-point groups, one per registry.
GROUPS: tuple[str, ...] = (
    methods.registry.ENTRY_POINT_GROUP,
    architectures.ENTRY_POINT_GROUP,
    bench.data.ENTRY_POINT_GROUP,
)


@dataclass(frozen=True)
class Registered:
    """The names one source (a plugin file, or the installed entry points) registered."""

    source: str
    methods: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.methods or self.architectures or self.datasets)

    def describe(self) -> str:
        """One line, e.g. ``my.py: method magnitude; architecture tiny_mlp``."""
        parts = [
            f"{kind} {', '.join(names)}"
            for kind, names in (
                ("method", self.methods),
                ("architecture", self.architectures),
                ("data set", self.datasets),
            )
            if names
        ]
        return f"{self.source}: {'; '.join(parts) or 'nothing registered'}"


def load_file(path: str | Path) -> Registered:
    """Execute the plugin file ``path`` and return what its decorators registered.

    The installed entry points are loaded first (a name the file registers again is an error
    naming the file). The file is run once as its own module (through
    :func:`methods.load_plugin`, which labels the methods); the architectures and data sets it
    added are labelled ``plugin <file>``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise BenchError(f"plugin file {str(path)!r} does not exist")
    if not path.is_file():
        raise BenchError(f"plugin file {str(path)!r} is not a file")
    path = path.resolve()
    load_entry_points()  # installed plugins first, so that a clash names the file
    archs_before = set(architectures.available())
    datasets_before = set(bench.data.available())
    try:
        added_methods = methods.load_plugin(path)
    except SyntaxError as error:
        where = f" at line {error.lineno}" if error.lineno else ""
        raise BenchError(f"plugin file {str(path)!r}: syntax error{where}: {error.msg}") from None
    except Exception as error:
        raise BenchError(
            f"plugin file {str(path)!r} failed{_line_in(error, path)}: "
            f"{type(error).__name__}: {error}"
        ) from error
    origin = f"plugin {path}"
    added_archs = sorted(set(architectures.available()) - archs_before)
    added_datasets = [n for n in bench.data.available() if n not in datasets_before]
    for name in added_archs:
        architectures.set_origin(name, origin)
    for name in added_datasets:
        bench.data.set_origin(name, origin)
    return Registered(str(path), tuple(added_methods), tuple(added_archs), tuple(added_datasets))


def load_files(paths: list[str] | list[Path]) -> list[Registered]:
    """:func:`load_file` for each of ``paths``, in order (the CLI's repeatable ``--plugin``)."""
    return [load_file(path) for path in paths]


def _line_in(error: BaseException, path: Path) -> str:
    """`` at line N`` of the innermost frame of ``error`` that ran in ``path`` (or nothing)."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename) == path
    ]
    return f" at line {lines[-1]}" if lines else ""


def load_entry_points() -> Registered:
    """Import every installed plugin of the three entry-point groups; return what they added.

    Each registry loads its group once per process; calling this again returns the same names.
    """
    loaders = (methods.available, architectures.available, bench.data.available)
    names: list[list[str]] = []
    for group, available in zip(GROUPS, loaders, strict=True):
        try:
            names.append(available())
        except BenchError:
            raise
        except (methods.UnknownMethod, architectures.UnknownArchitecture) as error:
            raise BenchError(str(error)) from error
        except Exception as error:  # e.g. methods' loader lets an import error through
            raise BenchError(
                f"entry points of group {group} failed to load: {type(error).__name__}: {error}"
            ) from error
    method_names, arch_names, dataset_names = names

    def from_entry_points(origins: dict[str, str]) -> tuple[str, ...]:
        return tuple(sorted(n for n, o in origins.items() if o.startswith("entry point ")))

    return Registered(
        "entry points",
        from_entry_points({n: methods.method_class(n).origin for n in method_names}),
        from_entry_points({n: architectures.spec(n).origin for n in arch_names}),
        from_entry_points({n: bench.data.dataset_spec(n).origin for n in dataset_names}),
    )
