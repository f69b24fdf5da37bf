"""Registry of architectures: a name maps to a factory plus the inputs it accepts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from architectures.prunable import PRUNABLE_TYPES

InputShape = tuple[int, int, int]
Factory = Callable[..., nn.Module]


class UnknownArchitecture(ValueError):
    """An architecture name that is not registered, or an input it cannot take."""


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: how to build it and which ``(C, H, W)`` inputs it accepts."""

    name: str
    factory: Factory
    description: str
    accepts: Callable[[InputShape], bool] = field(default=lambda shape: True)
    accepts_text: str = "any input"
    # Architectures with their own initialisation (Fixup) opt out of the Kaiming re-init.
    kaiming_init: bool = True


_ARCHS: dict[str, ArchSpec] = {}


def register_arch(spec: ArchSpec) -> ArchSpec:
    """Add ``spec`` to the registry (a name may be registered once)."""
    if spec.name in _ARCHS:
        raise ValueError(f"architecture {spec.name!r} is already registered")
    _ARCHS[spec.name] = spec
    return spec


def available() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_ARCHS)


def spec(name: str) -> ArchSpec:
    """The spec registered under ``name``, or an error naming the valid ones."""
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
