"""Registry of data sets: a name maps to a LightningDataModule class and its per-set facts.

Three ways in, as for methods and architectures: the :func:`register` decorator (the built-in
sets and ``--plugin`` files), the entry-point group ``paibench.datasets`` for installed packages,
and :func:`register_dataset` with a ready :class:`DatasetSpec` (what the decorator calls).

The decorator takes either a :class:`~bench.data.base.TensorDataModule` subclass (for sets that
need files, a download or augmentation) or, shortest, a function returning the four split
tensors, which it wraps in a generated ``TensorDataModule`` subclass, so that every data set is
a real LightningDataModule with the run's seeded validation split, subset and loader order::

    @bench.data.register("iris", input_shape=(1, 1, 4), num_classes=3)
    def iris():
        x, y = load_iris(return_X_y=True)
        return x[::2], y[::2], x[1::2], y[1::2]
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch

from architectures.entry_points import installed
from bench.data.base import Splits, TensorDataModule
from bench.errors import BenchError

ENTRY_POINT_GROUP = "paibench.datasets"
BUILT_IN = "built-in"

InputShape = tuple[int, int, int]
Loader = Callable[..., Any]
T = TypeVar("T")


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set: its module class and the facts that belong to the data set.

    ``default_arch`` is the model a grid uses when no ``--archs`` is given. ``default_epochs`` is
    the budget when neither ``--epochs`` nor a preset for this data set is given (digits is a
    smoke-scale set, so its default is small; the paper's sets use the preset's 200).
    ``batches_per_step`` is how many batches FORCE and Iter-SNIP average per pruning step (the
    paper's Table 3: CIFAR-10 1, CIFAR-100 10, Tiny ImageNet 20). ``origin`` says where the spec
    came from (``"built-in"``, ``"entry point <module:attr>"``, ``"plugin <file>"``).
    """

    name: str
    module: type[TensorDataModule]
    default_arch: str = "mlp"
    default_epochs: int | None = None
    batches_per_step: int = 1
    description: str = ""
    origin: str = ""

    @property
    def input_shape(self) -> InputShape:
        """``(C, H, W)`` of one example, known without loading anything."""
        return tuple(self.module.input_shape)  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        """Number of classes, known without loading anything."""
        return int(self.module.num_classes)


DATASETS: dict[str, DatasetSpec] = {}  # the registry itself, in registration order
_entry_points_loaded = False


def _origin_of(obj: object) -> str:
    """``"built-in"`` for ``bench.data``'s own modules, else the defining module and its file."""
    module = getattr(obj, "__module__", None) or "?"
    if module.startswith("bench.data"):
        return BUILT_IN
    file = getattr(sys.modules.get(module), "__file__", None)
    return f"{module} ({file})" if file else module


def _check_spec(spec: DatasetSpec) -> None:
    name = spec.name
    if not name or name != name.strip() or any(c in name for c in ", :"):
        raise ValueError(f"bad data set name {name!r} (no spaces, commas or colons)")
    if not (isinstance(spec.module, type) and issubclass(spec.module, TensorDataModule)):
        raise TypeError(f"data set {name!r}: {spec.module!r} is not a TensorDataModule subclass")
    shape = spec.module.input_shape
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"data set {name!r}: input_shape must be (C, H, W), not {shape!r}")
    if not (isinstance(spec.module.num_classes, int) and spec.module.num_classes >= 1):
        raise ValueError(
            f"data set {name!r}: num_classes must be set (got {spec.module.num_classes!r})"
        )
    if not (isinstance(spec.batches_per_step, int) and spec.batches_per_step >= 1):
        raise ValueError(f"data set {name!r}: batches_per_step must be an int >= 1")
    if spec.default_epochs is not None and spec.default_epochs < 1:
        raise ValueError(f"data set {name!r}: default_epochs must be >= 1 or None")


def _check_free(name: str) -> None:
    if name in DATASETS:
        raise ValueError(f"data set {name!r} is already registered (by {DATASETS[name].origin})")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry (a name may be registered once); returns the stored spec."""
    _check_free(spec.name)
    _check_spec(spec)
    if not spec.origin:
        spec = replace(spec, origin=_origin_of(spec.module))
    DATASETS[spec.name] = spec
    return spec


def register(
    name: str | None = None,
    *,
    default_arch: str = "mlp",
    default_epochs: int | None = None,
    batches_per_step: int = 1,
    description: str | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    origin: str | None = None,
) -> Callable[[T], T]:
    """Decorator registering a data set; returns what it decorates unchanged.

    On a :class:`TensorDataModule` subclass, ``input_shape`` and ``num_classes`` default to the
    class's attributes and ``name`` to its ``name``. On a function, both are required: the
    function returns ``(x_train, y_train, x_test, y_test)`` (or a :class:`Splits`) as tensors or
    arrays; ``x`` is converted to float and reshaped to ``(N, *input_shape)``, ``y`` to long.
    A function may take ``data_dir`` and ``download`` to receive the run's ``--data-dir`` and
    ``--download``. ``description`` defaults to the first docstring line.
    """

    def decorator(obj: T) -> T:
        if isinstance(obj, type) and issubclass(obj, TensorDataModule):
            key = name or obj.name or obj.__name__.lower()
            _check_free(key)  # before the class is touched
            module = obj
            module.name = key
            if input_shape is not None:
                module.input_shape = _shape(key, input_shape)
            if num_classes is not None:
                module.num_classes = num_classes
        elif callable(obj) and not isinstance(obj, type):
            key = name or obj.__name__
            if input_shape is None or num_classes is None:
                raise TypeError(
                    f"data set {key!r}: registering a function needs input_shape= and "
                    "num_classes= (a TensorDataModule subclass can set them as attributes)"
                )
            module = loader_module(key, obj, _shape(key, input_shape), num_classes)
        else:
            raise TypeError(
                f"register() decorates a TensorDataModule subclass or a function, not {obj!r}"
            )
        register_dataset(
            DatasetSpec(
                key,
                module,
                default_arch=default_arch,
                default_epochs=default_epochs,
                batches_per_step=batches_per_step,
                description=description if description is not None else _first_line(obj),
                origin=origin or _origin_of(obj),
            )
        )
        return obj

    return decorator


def _shape(name: str, shape: Sequence[int]) -> InputShape:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(f"data set {name!r}: input_shape must be (C, H, W), not {shape!r}")
    return shape  # type: ignore[return-value]


def _first_line(obj: object) -> str:
    """The first line of ``obj``'s own docstring (not one inherited from a base class)."""
    doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "")
    return doc.splitlines()[0] if doc else ""


def loader_module(
    name: str, loader: Loader, input_shape: InputShape, num_classes: int
) -> type[TensorDataModule]:
    """A ``TensorDataModule`` subclass whose ``load`` calls ``loader`` and converts its splits."""
    wanted = inspect.signature(loader).parameters
    passed = [k for k in ("data_dir", "download") if k in wanted]

    def load(self: TensorDataModule) -> Splits:
        result = loader(**{k: getattr(self, k) for k in passed})
        return as_splits(name, result, self.input_shape)

    attrs = {
        "name": name,
        "input_shape": input_shape,
        "num_classes": num_classes,
        "load": load,
        "loader": staticmethod(loader),
        "__module__": getattr(loader, "__module__", __name__),
        "__doc__": inspect.getdoc(loader) or f"The {name!r} data set from {loader!r}.",
    }
    class_name = "".join(p.capitalize() for p in name.replace("-", "_").split("_")) + "DataModule"
    return types.new_class(class_name, (TensorDataModule,), {}, lambda ns: ns.update(attrs))


def as_splits(name: str, result: Any, input_shape: InputShape) -> Splits:
    """A loader's ``Splits`` or 4-tuple as float ``(N, *input_shape)`` images and long labels."""
    if isinstance(result, Splits):
        parts: Sequence[Any] = (result.x_train, result.y_train, result.x_test, result.y_test)
    elif isinstance(result, Sequence) and len(result) == 4:
        parts = result
    else:
        raise BenchError(
            f"data set {name!r}: the loader must return (x_train, y_train, x_test, y_test), "
            f"not {type(result).__name__}"
        )
    x_train, y_train, x_test, y_test = parts

    def images(x: Any) -> torch.Tensor:
        x = torch.as_tensor(x).to(torch.float32)
        if x.ndim < 1 or x[0].numel() != _numel(input_shape):
            raise BenchError(
                f"data set {name!r}: examples of shape {tuple(x.shape[1:])} cannot be viewed as "
                f"the registered input_shape {input_shape}"
            )
        return x.reshape(len(x), *input_shape).contiguous()

    def labels(y: Any) -> torch.Tensor:
        return torch.as_tensor(y).to(torch.long).reshape(-1)

    return Splits(images(x_train), labels(y_train), images(x_test), labels(y_test))


def _numel(shape: InputShape) -> int:
    channels, height, width = shape
    return channels * height * width


def set_origin(name: str, origin: str) -> None:
    """Relabel where ``name`` came from (plugin loaders call this for what a file registered)."""
    DATASETS[name] = replace(DATASETS[name], origin=origin)


def _load_entry_points() -> None:
    """Import every installed plugin of the ``paibench.datasets`` group, once.

    An entry point may name a module whose ``@register`` decorators run on import, a
    :class:`TensorDataModule` subclass (registered under the entry point's name with the default
    facts) or a :class:`DatasetSpec`.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep, loaded, origin in installed(ENTRY_POINT_GROUP, DATASETS, set_origin, BenchError):
        if isinstance(loaded, DatasetSpec):
            if loaded.name not in DATASETS:
                register_dataset(replace(loaded, origin=origin))
            continue
        if isinstance(loaded, types.ModuleType):
            # Its decorators may have run earlier (another group imported it): relabel what it
            # defined and still carries its default label.
            for name, spec in list(DATASETS.items()):
                defined_there = spec.module.__module__ == loaded.__name__
                if defined_there and spec.origin == _origin_of(spec.module):
                    set_origin(name, origin)
            continue
        owners = [
            n
            for n, s in DATASETS.items()
            if s.module is loaded or getattr(s.module, "loader", None) is loaded
        ]
        for owner in owners:
            set_origin(owner, origin)
        if owners:
            continue
        if isinstance(loaded, type) and issubclass(loaded, TensorDataModule):
            register(ep.name, origin=origin)(loaded)
        else:
            raise BenchError(
                f"entry point {ep.name} = {ep.value} of group {ENTRY_POINT_GROUP} names "
                f"{loaded!r}: expected a module, a TensorDataModule subclass, a DatasetSpec or "
                "a loader decorated with @bench.data.register"
            )


def available() -> list[str]:
    """Names of every registered data set (built-in, entry points, plugin files), in order."""
    _load_entry_points()
    return list(DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of data set ``name`` or an error naming the valid ones."""
    _load_entry_points()
    try:
        return DATASETS[name]
    except KeyError:
        raise BenchError(f"unknown dataset {name!r} (valid: {', '.join(DATASETS)})") from None


def make_datamodule(name: str, **kwargs: Any) -> TensorDataModule:
    """Instantiate the data module of ``name`` with loader options (batch size, seed, ...)."""
    return dataset_spec(name).module(**kwargs)

