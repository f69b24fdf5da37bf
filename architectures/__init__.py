"""The model zoo, the prunable-layer rule, the DCT and the DCTpS layers.

Architectures are a registry (``architectures/registry.py``): register a builder with
``@architectures.register("name", ...)``, through the entry-point group
``paibench.architectures``, or in a ``--plugin`` file; see README "Adding an architecture".
"""

from architectures import cifar_resnet as _cifar_resnet  # noqa: F401  (registers the zoo)
from architectures import fixup_resnet as _fixup_resnet  # noqa: F401
from architectures import lenet as _lenet  # noqa: F401
from architectures import mobilenetv2 as _mobilenetv2  # noqa: F401
from architectures import small as _small  # noqa: F401  (registers the small models)
from architectures import vgg as _vgg  # noqa: F401
from architectures.dctps import dctps_alphas
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
    ENTRY_POINT_GROUP,
    ArchSpec,
    InputShape,
    UnknownArchitecture,
    available,
    build,
    register,
    register_arch,
    set_origin,
    spec,
)
from architectures.summary import build_meta, summarize

__all__ = [
    "ENTRY_POINT_GROUP",
    "PRUNABLE_TYPES",
    "ArchSpec",
    "InputShape",
    "ParameterCount",
    "PrunableLayer",
    "UnknownArchitecture",
    "available",
    "build",
    "build_meta",
    "count_prunable",
    "dctps_alphas",
    "parameter_count",
    "prunable_layers",
    "prunable_parameters",
    "register",
    "register_arch",
    "set_origin",
    "spec",
    "summarize",
]
