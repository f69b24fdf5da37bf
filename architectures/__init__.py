"""The model zoo, the prunable-layer rule, and (later) the DCT and DCTpS layers."""

from architectures import small as _small  # noqa: F401  (registers the small models)
from architectures.prunable import (
    PRUNABLE_TYPES,
    ParameterCount,
    PrunableLayer,
    count_prunable,
    parameter_count,
    prunable_layers,
    prunable_parameters,
)
from architectures.registry import (
    ArchSpec,
    UnknownArchitecture,
    available,
    build,
    register_arch,
    spec,
)

__all__ = [
    "PRUNABLE_TYPES",
    "ArchSpec",
    "ParameterCount",
    "PrunableLayer",
    "UnknownArchitecture",
    "available",
    "build",
    "count_prunable",
    "parameter_count",
    "prunable_layers",
    "prunable_parameters",
    "register_arch",
    "spec",
]
