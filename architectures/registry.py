"""Registry of architectures: a name maps to a builder plus the inputs it accepts.

Three ways in, as for methods (``methods/registry.py``): the :func:`register` decorator on a
builder (in-tree models and ``--plugin`` files), the entry-point group ``paibench.architectures``
for installed packages, and :func:`register_arch` with a ready :class:`ArchSpec` (what the
decorator calls). Every spec records where it came from in ``origin``.

A builder is ``builder(num_classes, input_shape, **options) -> nn.Module``; ``input_shape`` is
the data set's ``(C, H, W)``.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

import torch
from torch import nn

from architectures.entry_points import installed
from architectures.prunable import PRUNABLE_TYPES

InputShape = tuple[int, int, int]
Factory = Callable[..., nn.Module]
ENTRY_POINT_GROUP = "paibench.architectures"
BUILT_IN = "built-in"

B = TypeVar("B", bound=Callable[..., nn.Module])


class UnknownArchitecture(ValueError):
    """An architecture name that is not registered, or an input it cannot take."""


def _any_input(shape: InputShape) -> bool:
    """Accept every ``(C, H, W)`` (the default of :func:`register`)."""
    return True


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: how to build it and which ``(C, H, W)`` inputs it accepts.

    ``training_overrides`` are training-preset fields this architecture always trains with,
    whatever the preset (the paper's LeNet-5: batch 64 and 160 epochs, Table 4's caption); the
    run pipeline applies them on top of the preset. ``origin`` says where the spec came from:
    ``"built-in"``, ``"entry point <module:attr>"``, ``"plugin <file>"`` or the defining module;
    :func:`register_arch` fills it in when left empty.
    """

    name: str
    factory: Factory
    description: str
    accepts: Callable[[InputShape], bool] = field(default=_any_input)
    accepts_text: str = "any input"
    # Architectures with their own initialisation (Fixup) opt out of the Kaiming re-init.
    kaiming_init: bool = True
    training_overrides: Mapping[str, int | float] = field(
        default_factory=lambda: types.MappingProxyType({}), hash=False
    )
    origin: str = ""

    def __post_init__(self) -> None:
        overrides = dict(self.training_overrides)
        for key, value in overrides.items():
            if not isinstance(key, str) or isinstance(value, bool):
                raise TypeError(
                    f"architecture {self.name!r}: bad training override {key}={value!r}"
                )
            if not isinstance(value, int | float):
                raise TypeError(
                    f"architecture {self.name!r}: training override {key} must be a number, "
                    f"not {value!r}"
                )
        # Read-only, so that a spec shared by every run cannot be changed by one of them.
        object.__setattr__(self, "training_overrides", types.MappingProxyType(overrides))


_ARCHS: dict[str, ArchSpec] = {}
_entry_points_loaded = False


def _origin_of(factory: Callable[..., object]) -> str:
    """``"built-in"`` for the zoo's own modules, else the defining module and its file."""
    module = getattr(factory, "__module__", None) or "?"
    if module == "architectures" or module.startswith("architectures."):
        return BUILT_IN
    file = getattr(sys.modules.get(module), "__file__", None)
    return f"{module} ({file})" if file else module


def _check_builder(name: str, factory: Callable[..., object]) -> None:
    """A builder must be callable as ``factory(num_classes=..., input_shape=...)``."""
    if not callable(factory):
        raise TypeError(f"architecture {name!r}: the builder {factory!r} is not callable")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins have no signature: trust them
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    missing = [k for k in ("num_classes", "input_shape") if k not in params]
    if missing:
        raise TypeError(
            f"architecture {name!r}: the builder must take num_classes and input_shape "
            f"(missing: {', '.join(missing)})"
        )


def register_arch(spec: ArchSpec) -> ArchSpec:
    """Add ``spec`` to the registry (a name may be registered once); returns the stored spec."""
    name = spec.name
    if not name or name != name.strip() or any(c in name for c in ", :"):
        raise ValueError(f"bad architecture name {name!r} (no spaces, commas or colons)")
    _check_builder(name, spec.factory)
    if name in _ARCHS:
        raise ValueError(f"architecture {name!r} is already registered (by {_ARCHS[name].origin})")
    if not spec.origin:
        spec = replace(spec, origin=_origin_of(spec.factory))
    _ARCHS[name] = spec
    return spec


def register(
    name: str | None = None,
    *,
    description: str | None = None,
    accepts: Callable[[InputShape], bool] | None = None,
    accepts_text: str | None = None,
    kaiming_init: bool = True,
    training_overrides: Mapping[str, int | float] | None = None,
    origin: str | None = None,
) -> Callable[[B], B]:
    """Decorator registering a builder ``(num_classes, input_shape, **options) -> nn.Module``.

    ``name`` defaults to the builder's name and ``description`` to the first line of its
    docstring; ``accepts(shape)`` says which ``(C, H, W)`` inputs it takes (default: any), and
    ``accepts_text`` says so in words (default: the first line of ``accepts``' docstring).
    The builder is returned unchanged.
    """

    def decorator(factory: B) -> B:
        key = name or factory.__name__
        check = accepts or _any_input
        text = accepts_text or (
            "any input"
            if accepts is None
            else _first_line(accepts) or "inputs its accepts() check allows"
        )
        register_arch(
            ArchSpec(
                key,
                factory,
                description if description is not None else _first_line(factory),
                accepts=check,
                accepts_text=text,
                kaiming_init=kaiming_init,
                training_overrides=training_overrides or {},
                origin=origin or "",
            )
        )
        return factory

    return decorator


def _first_line(obj: object) -> str:
    """The first line of ``obj``'s own docstring (not one inherited from a base class)."""
    doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "")
    return doc.splitlines()[0] if doc else ""


def set_origin(name: str, origin: str) -> None:
    """Relabel where ``name`` came from (plugin loaders call this for what a file registered)."""
    _ARCHS[name] = replace(_ARCHS[name], origin=origin)


def _load_entry_points() -> None:
    """Import every installed plugin of the ``paibench.architectures`` group, once.

    An entry point may name a module whose ``@register`` decorators run on import, a builder
    (registered under the entry point's name) or an :class:`ArchSpec`.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep, loaded, origin in installed(ENTRY_POINT_GROUP, _ARCHS, set_origin, UnknownArchitecture):
        if isinstance(loaded, ArchSpec):
            if loaded.name not in _ARCHS:
                register_arch(replace(loaded, origin=origin))
        elif isinstance(loaded, types.ModuleType):
            # Its decorators may have run earlier (another group imported it): relabel what it
            # defined and still carries its default label.
            for name, arch in list(_ARCHS.items()):
                defined_there = getattr(arch.factory, "__module__", None) == loaded.__name__
                if defined_there and arch.origin == _origin_of(arch.factory):
                    set_origin(name, origin)
        elif callable(loaded):
            owners = [n for n, s in _ARCHS.items() if s.factory is loaded]
            if owners:
                for owner in owners:
                    set_origin(owner, origin)
            else:
                register(ep.name, origin=origin)(loaded)


def available() -> list[str]:
    """Names of every registered architecture (built-in, entry points, plugin files), sorted."""
    _load_entry_points()
    return sorted(_ARCHS)


def spec(name: str) -> ArchSpec:
    """The spec registered under ``name``, or an error naming the valid ones."""
    _load_entry_points()
    try:
        return _ARCHS[name]
    except KeyError:
        raise UnknownArchitecture(
            f"unknown architecture {name!r} (valid: {', '.join(available())})"
        ) from None


def kaiming_init_(model: nn.Module, generator: torch.Generator) -> None:
    """Kaiming normal (fan-in, ReLU gain) on every conv/linear weight, as both reference scripts."""
    for module in model.modules():
        if isinstance(module, PRUNABLE_TYPES):
            nn.init.kaiming_normal_(
                module.weight, mode="fan_in", nonlinearity="relu", generator=generator
            )


def build(
    name: str,
    num_classes: int,
    *,
    input_shape: InputShape = (3, 32, 32),
    seed: int = 0,
    **options: object,
) -> nn.Module:
    """Build ``name`` for ``num_classes`` classes and ``input_shape`` inputs, seeded by ``seed``.

    Every random draw of the construction (PyTorch's default bias init included) comes from
    ``seed`` without touching the caller's global RNG state, so the same seed gives the same
    weights bit for bit.
    """
    arch = spec(name)
    if not arch.accepts(tuple(input_shape)):
        raise UnknownArchitecture(
            f"architecture {name!r} does not accept inputs of shape {tuple(input_shape)} "
            f"(it accepts {arch.accepts_text})"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = arch.factory(num_classes=num_classes, input_shape=tuple(input_shape), **options)
    if arch.kaiming_init:
        kaiming_init_(model, torch.Generator().manual_seed(seed))
    return model
