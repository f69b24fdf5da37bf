"""The method registry: a decorator for in-tree methods, entry points and plugin files for the rest.

``get(name, **options)`` builds a method with typed options, each checked against the range it
declares (:mod:`methods.options`); ``parse_spec("dctps:allocation=epf")`` turns the CLI spelling
into ``(name, options)``, whose values ``get`` converts to the constructor's types.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from methods.base import Method
from methods.controls import CONTROL_TYPES, with_controls
from methods.errors import UnknownMethod
from methods.options import OptionInfo, convert_option, options_of

__all__ = [  # OptionInfo, convert_option and options_of live in methods.options
    "ENTRY_POINT_GROUP",
    "OptionInfo",
    "available",
    "convert_option",
    "get",
    "load_plugin",
    "method_class",
    "options_of",
    "parse_spec",
    "register",
]

ENTRY_POINT_GROUP = "paibench.methods"

_REGISTRY: dict[str, type[Method]] = {}
_entry_points_loaded = False

M = TypeVar("M", bound=type[Method])


def register(name: str | None = None, *, origin: str | None = None) -> Callable[[M], M]:
    """Class decorator adding a :class:`Method` subclass to the registry under ``name``."""

    def decorator(cls: M) -> M:
        key = (name or cls.name or cls.__name__).lower()
        if not issubclass(cls, Method):
            raise TypeError(f"{cls.__name__} must subclass methods.Method to be registered")
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"method {key!r} is already registered by {_REGISTRY[key].origin}")
        cls.name = key
        cls.origin = origin or _origin_of(cls)
        _REGISTRY[key] = cls
        return cls

    return decorator


def _origin_of(cls: type) -> str:
    module = cls.__module__
    if module.startswith("methods."):
        return "built-in"
    file = getattr(sys.modules.get(module), "__file__", None)
    return f"{module} ({file})" if file else module


def _load_entry_points() -> None:
    """Import every installed plugin of the ``paibench.methods`` group, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loaded = ep.load()
        if (
            isinstance(loaded, type)
            and issubclass(loaded, Method)
            and loaded not in _REGISTRY.values()
        ):
            register(ep.name, origin=f"entry point {ep.value}")(loaded)
        for cls in list(_REGISTRY.values()):
            if cls.__module__ == getattr(loaded, "__name__", None) and cls.origin == _origin_of(
                cls
            ):
                cls.origin = f"entry point {ep.value}"


def load_plugin(path: str | Path) -> list[str]:
    """Execute a plugin file (its ``@register`` decorators run) and return the names it added."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"plugin file {str(path)!r} does not exist")
    before = set(_REGISTRY)
    module_name = f"paibench_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    added = sorted(set(_REGISTRY) - before)
    for name in added:
        _REGISTRY[name].origin = f"plugin {path}"
    return added


def available() -> list[str]:
    """Names of every registered method (built-in, entry points, loaded plugins), sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def method_class(name: str) -> type[Method]:
    """The class registered under ``name``, or :class:`UnknownMethod` naming the valid ones."""
    _load_entry_points()
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise UnknownMethod(f"unknown method {name!r} (valid: {', '.join(available())})") from None


def get(name: str, **options: Any) -> Method:
    """An instance of method ``name`` with ``options`` converted to the options' types.

    Raises :class:`UnknownMethod` for an unknown name, option or value, and its subclass
    :class:`~methods.errors.OptionOutOfRange` for a value outside the option's declared range.
    """
    cls = method_class(name)
    known = {info.name: info for info in options_of(cls)}
    converted = {}
    controls = {}  # generic sanity controls (methods/controls.py), unless the method owns the name
    for key, value in options.items():
        if key in CONTROL_TYPES and key not in known:
            controls[key] = convert_option(cls.name, key, value, CONTROL_TYPES[key])
            continue
        if key not in known:
            valid = ", ".join(known) or "none"
            raise UnknownMethod(f"unknown option {key!r} for method {cls.name!r} (valid: {valid})")
        converted[key] = convert_option(cls.name, key, value, known[key].type)
    return with_controls(cls(**converted), **controls)


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    """Split the CLI spelling ``name:key=value,key=value`` into the name and raw options."""
    name, _, rest = text.strip().partition(":")
    options: dict[str, str] = {}
    if rest:
        for item in rest.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UnknownMethod(f"bad option {item!r} in {text!r} (expected key=value)")
            options[key.strip()] = value.strip()
    return name.strip().lower(), options
