"""Command-line options declared once, on the dataclass fields they fill.

A field made with :func:`option` carries its help text (and, where argparse needs them, its
flag, aliases, choices and a converter); :func:`add_arguments` turns a dataclass's fields into
argparse arguments and :func:`values` reads them back, so a new option is one field.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

CLI = "paibench.cli"


@dataclass(frozen=True)
class Cli:
    """How one dataclass field appears on the command line."""

    help: str
    flag: str | None = None  # default: --field-name
    aliases: tuple[str, ...] = ()
    nargs: str | None = None
    metavar: str | None = None
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    # Parses the raw string (or list of strings, with nargs) after argparse; raise
    # argparse.ArgumentTypeError or a ValueError naming the bad value.
    parse: Callable[[Any], Any] | None = None
    const: Any = None  # the value of a flag given without its optional argument (nargs="?")
    flag_only: bool = False  # a store_true switch
    repeat: bool = False  # may be given several times (action="append")


def option(default: Any = None, help: str = "", **cli: Any) -> Any:
    """A dataclass field with a default and its command-line declaration."""
    spec = Cli(help=help, **cli)
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple (immutable) default for an option")
    return field(default=default, metadata={CLI: spec})


def cli_fields(cls: type) -> list[tuple[dataclasses.Field, Cli]]:
    """The fields of dataclass ``cls`` that are command-line options, in declaration order."""
    return [(f, f.metadata[CLI]) for f in dataclasses.fields(cls) if CLI in f.metadata]


def flag_of(f: dataclasses.Field, spec: Cli) -> str:
    return spec.flag or "--" + f.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """Add one argument per option field of ``cls`` (defaults say what the field's default is)."""
    for f, spec in cli_fields(cls):
        if f.name in skip:
            continue
        names = [flag_of(f, spec), *spec.aliases]
        default = f.default
        shown = "" if default in (None, False, ()) else f" (default {_show(default)})"
        kwargs: dict[str, Any] = {"dest": f.name, "help": spec.help + shown}
        if spec.flag_only:
            kwargs.update(action="store_true", default=default)
        elif spec.repeat:
            kwargs.update(action="append", default=argparse.SUPPRESS, metavar=spec.metavar)
        else:
            kwargs.update(default=argparse.SUPPRESS)
            if spec.nargs is not None:
                kwargs["nargs"] = spec.nargs
            if spec.nargs == "?":
                kwargs["const"] = spec.const
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
            choices = spec.choices() if callable(spec.choices) else spec.choices
            if choices is not None:
                kwargs["choices"] = list(choices)
        parser.add_argument(*names, **kwargs)


def values(args: argparse.Namespace, cls: type, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The option values of ``cls`` given in ``args``, parsed; options not given are absent."""
    given: dict[str, Any] = {}
    for f, spec in cli_fields(cls):
        if f.name in skip or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if spec.flag_only and value == f.default:
            continue
        given[f.name] = spec.parse(value) if spec.parse is not None else value
    return given


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


def positive_int(text: str) -> int:
    """An integer >= 1, or an error naming the bad text."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad integer {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def int_list(values: str | Sequence[str]) -> tuple[int, ...]:
    """``"0,1,2"`` or ``["0", "1,2"]`` -> ``(0, 1, 2)``."""
    items = split_names([values] if isinstance(values, str) else values)
    try:
        return tuple(int(v) for v in items)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad integer list {' '.join(items)!r}") from None


def split_names(values: Sequence[str]) -> tuple[str, ...]:
    """Names given space- or comma-separated, in order."""
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def parse_device(text: str) -> int:
    """``cuda:1``, ``gpu:1`` or ``1`` -> 1."""
    index = text.split(":", 1)[1] if ":" in text else text
    if not index.isdigit():
        raise argparse.ArgumentTypeError(f"bad device {text!r} (valid: cuda:N or N)")
    return int(index)
