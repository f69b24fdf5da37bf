"""Prune-at-initialization methods behind one interface.

>>> import methods
>>> allocation = methods.get("epl").allocate(model, 0.01, context=methods.AllocationContext())
>>> allocation.apply(model)

Register a new method with :func:`register`; see README "Adding a method".
"""

from methods import dctps as _dctps  # noqa: F401
from methods import force as _force  # noqa: F401
from methods import grasp as _grasp  # noqa: F401
from methods import snip as _snip  # noqa: F401
from methods import sparse_random as _sparse_random  # noqa: F401  (registers built-ins)
from methods import synflow as _synflow  # noqa: F401
from methods.allocation import (
    Allocation,
    LayerAllocation,
    WeightMask,
    remove_masks,
    trainable_parameter_count,
)
from methods.base import AllocationContext, Method, PassCounter, check_density, target_count
from methods.cost import AllocationCost, CostMeter
from methods.distributions import capped_proportional, layer_counts
from methods.errors import AllocationFailed, UnknownMethod
from methods.registry import (
    available,
    convert_option,
    get,
    load_plugin,
    method_class,
    options_of,
    parse_spec,
    register,
)
from methods.selection import global_topk, random_layer_masks

__all__ = [
    "Allocation",
    "AllocationContext",
    "AllocationCost",
    "AllocationFailed",
    "CostMeter",
    "LayerAllocation",
    "Method",
    "PassCounter",
    "UnknownMethod",
    "WeightMask",
    "available",
    "capped_proportional",
    "check_density",
    "convert_option",
    "get",
    "global_topk",
    "layer_counts",
    "load_plugin",
    "method_class",
    "options_of",
    "parse_spec",
    "random_layer_masks",
    "register",
    "remove_masks",
    "target_count",
    "trainable_parameter_count",
]
