"""Prune-at-initialization methods behind one interface.

>>> import methods
>>> allocation = methods.get("epl").allocate(model, 0.01, context=methods.AllocationContext())
>>> allocation.apply(model)

A method is a :class:`Method` whose ``select(model, layers, budget, context)`` returns one bool
mask per prunable weight, keeping exactly ``budget`` (a :class:`Budget`: the int ``k`` with the
requested density and ``N``). Most are put together from parts that live in one module each:
scores on a :mod:`~methods.scoring` copy, the exact global top-k and random positions
(:mod:`~methods.selection`), per-layer counts (:mod:`~methods.distributions`), schedules
(:mod:`~methods.schedules`) and the shared iterative loop (:mod:`~methods.iterative`) with its
:mod:`~methods.survivors`, and the data-driven methods' :mod:`~methods.batches`. Options and
their ranges: :mod:`~methods.options`. Register a new method with :func:`register`; see README
"Adding a method", and check it with :func:`methods.testing.check_method`.
"""

from methods import dctps as _dctps  # noqa: F401
from methods import force as _force  # noqa: F401
from methods import grasp as _grasp  # noqa: F401
from methods import hyperplane as _hyperplane  # noqa: F401
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
from methods.base import (
    AllocationContext,
    Budget,
    Method,
    PassCounter,
    as_budget,
    check_density,
    target_count,
)
from methods.cost import AllocationCost, CostMeter
from methods.distributions import capped_proportional, layer_counts
from methods.errors import AllocationFailed, MethodContractError, OptionOutOfRange, UnknownMethod
from methods.options import OptionInfo, Range, convert_option, options_of
from methods.registry import (
    available,
    get,
    load_plugin,
    method_class,
    parse_spec,
    register,
)
from methods.selection import global_topk, random_layer_masks, select_top

__all__ = [
    "Allocation",
    "AllocationContext",
    "AllocationCost",
    "AllocationFailed",
    "Budget",
    "CostMeter",
    "LayerAllocation",
    "Method",
    "MethodContractError",
    "OptionInfo",
    "OptionOutOfRange",
    "PassCounter",
    "Range",
    "UnknownMethod",
    "WeightMask",
    "as_budget",
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
    "select_top",
    "target_count",
    "trainable_parameter_count",
]
