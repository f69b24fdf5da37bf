"""Method options: typed constructor arguments, their declared ranges, and their CLI spelling.

A method's options are its constructor's keyword arguments with defaults. A numeric option
declares its valid range on its annotation, the one way for every method::

    steps: Annotated[int, Range(min=1)] = 60
    num_batches: Annotated[int, Range(min=1)] | None = None     # None: a default picked later
    temperature: Annotated[float, Range(min=0, min_exclusive=True)] = 200.0

Literal options list their choices in the annotation itself. Ranges are checked whenever a
method is constructed (:class:`methods.Method` wraps every subclass's ``__init__`` with
:func:`with_range_check`), so ``get("synflow", steps=-5)``, the CLI's ``synflow:steps=-5`` and
``SynFlow(steps=-5)`` all fail before any run with :class:`OptionOutOfRange`, naming the method,
the option, the value and the range. :func:`options_of` returns them for ``bench methods``.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from methods.errors import OptionOutOfRange, UnknownMethod


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric option: bounds (inclusive unless marked exclusive)."""

    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False

    def admits(self, value: Any, kind: Any = float) -> bool:
        """Whether ``value`` is a number of ``kind`` (int or float) inside the bounds."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if kind is int and not float(value).is_integer():
            return False
        low, high = self.min, self.max
        if low is not None and (value < low or (self.min_exclusive and value == low)):
            return False
        return high is None or not (value > high or (self.max_exclusive and value == high))

    def describe(self, kind: Any = float) -> str:
        """``"integers >= 1"``, ``"numbers > 0"``: the range as messages and ``bench methods``
        say it."""
        bounds = []
        if self.min is not None:
            bounds.append(f"{'>' if self.min_exclusive else '>='} {_number(self.min)}")
        if self.max is not None:
            bounds.append(f"{'<' if self.max_exclusive else '<='} {_number(self.max)}")
        noun = "integers" if kind is int else "numbers"
        return " and ".join([f"{noun} {bounds[0]}", *bounds[1:]]) if bounds else noun


def split_annotation(annotation: Any) -> tuple[Any, Range | None]:
    """The annotation without ``Annotated``, and its :class:`Range` (also inside ``X | None``)."""
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        return base, next((e for e in extras if isinstance(e, Range)), None)
    if get_origin(annotation) in (types.UnionType, typing.Union):
        parts = [split_annotation(arg) for arg in get_args(annotation)]
        ranges = [r for _, r in parts if r is not None]
        if ranges:
            return typing.Union[tuple(base for base, _ in parts)], ranges[0]  # noqa: UP007
    return annotation, None


def _numeric_kind(annotation: Any) -> Any:
    """``int`` or ``float`` for a numeric annotation (or ``X | None``), else ``float``."""
    if annotation in (int, float):
        return annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 and args[0] in (int, float) else float


@dataclass(frozen=True)
class OptionInfo:
    """One constructor option of a method: name, type (without ``Annotated``), default, range."""

    name: str
    type: Any
    default: Any
    range: Range | None = None

    def describe(self) -> str:
        """``steps=60 (integers >= 1)``, ``within='layer' (layer|filter)``, ``reinit=False``."""
        text = f"{self.name}={self.default!r}"
        if self.range is not None:
            optional = " or None" if type(None) in get_args(self.type) else ""
            return f"{text} ({self.range.describe(_numeric_kind(self.type))}{optional})"
        if get_origin(self.type) is Literal:
            return f"{text} ({'|'.join(map(str, get_args(self.type)))})"
        return text


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    return typing.get_type_hints(function, include_extras=True)


def options_of(cls: type) -> list[OptionInfo]:
    """The typed constructor options of ``cls``, in signature order, with their ranges."""
    hints = _hints(cls.__init__)  # type: ignore[misc]
    infos = []
    for param in inspect.signature(cls.__init__).parameters.values():  # type: ignore[misc]
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = None if param.default is inspect.Parameter.empty else param.default
        annotation, bounds = split_annotation(hints.get(param.name, Any))
        infos.append(OptionInfo(param.name, annotation, default, bounds))
    return infos


def check_range(method: str, option: str, value: Any, annotation: Any, bounds: Range) -> None:
    """Raise :class:`OptionOutOfRange` unless ``value`` is None (where allowed) or in range."""
    if value is None and type(None) in get_args(annotation):
        return
    kind = _numeric_kind(annotation)
    if not bounds.admits(value, kind):
        raise OptionOutOfRange(
            f"{method} option {option}={value!r} is out of range "
            f"(valid: {bounds.describe(kind)})"
        )


def with_range_check(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` preceded by the range check of every option that declares a :class:`Range`.

    The annotations are resolved on the first call (a plugin's may name things defined after
    its class); an annotation that cannot be resolved declares no range.
    """
    signature = inspect.signature(init)
    declared: dict[str, tuple[Any, Range]] | None = None

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal declared
        if declared is None:
            try:
                hints = _hints(init)
            except (NameError, TypeError):
                hints = {}
            declared = {}
            for name, hint in hints.items():
                annotation, bounds = split_annotation(hint)
                if bounds is not None and name in signature.parameters:
                    declared[name] = (annotation, bounds)
        if declared:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            method = getattr(type(self), "name", "") or type(self).__name__
            for name, (annotation, bounds) in declared.items():
                check_range(method, name, bound.arguments[name], annotation, bounds)
        init(self, *args, **kwargs)

    checked.__dict__["checks_ranges"] = True
    return checked


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def convert_option(method: str, key: str, value: Any, annotation: Any) -> Any:
    """Convert ``value`` (often a CLI string) to ``annotation``, or raise naming valid values."""
    annotation, _ = split_annotation(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        choices = get_args(annotation)
        for choice in choices:
            if value == choice or str(value) == str(choice):
                return choice
        raise UnknownMethod(
            f"bad value {value!r} for option {method}:{key} (valid: {', '.join(map(str, choices))})"
        )
    if origin in (types.UnionType, typing.Union):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        return convert_option(method, key, value, args[0]) if len(args) == 1 else value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise UnknownMethod(f"bad value {value!r} for option {method}:{key} (valid: true, false)")
    if annotation in (int, float):
        try:
            number = annotation(value)
        except (TypeError, ValueError):
            raise UnknownMethod(
                f"bad value {value!r} for option {method}:{key} (expected {annotation.__name__})"
            ) from None
        if annotation is int and isinstance(value, float) and number != value:
            raise UnknownMethod(f"bad value {value!r} for option {method}:{key} (expected int)")
        return number
    if annotation is str:
        return str(value)
    return value
