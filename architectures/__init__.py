"""The model zoo, the prunable-layer rule, and (later) the DCT and DCTpS layers."""

from architectures import cifar_resnet as _cifar_resnet  # noqa: F401  (registers the zoo)
from architectures import fixup_resnet as _fixup_resnet  # noqa: F401
from architectures import lenet as _lenet  # noqa: F401
from architectures import mobilenetv2 as _mobilenetv2  # noqa: F401
from architectures import small as _small  # noqa: F401  (registers the small models)
from architectures import vgg as _vgg  # noqa: F401
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
from architectures.summary import build_meta, summarize

__all__ = [
    "PRUNABLE_TYPES",
    "ArchSpec",
    "ParameterCount",
    "PrunableLayer",
    "UnknownArchitecture",
    "available",
    "build",
    "build_meta",
    "count_prunable",
    "parameter_count",
    "prunable_layers",
    "prunable_parameters",
    "register_arch",
    "spec",
    "summarize",
]
