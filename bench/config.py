"""RunConfig: everything that identifies one run, and its canonical hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bench.options import option, positive_int
from bench.presets import PRESETS
from storage.spec import method_spec

HASH_LENGTH = 16
# Fields that say where or how a run executes but not what it computes: never part of its identity.
NON_IDENTITY_FIELDS = frozenset({"accelerator", "data_dir", "download", "spectrum"})
ACCELERATORS = ("cpu", "gpu", "auto")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")


@dataclass(frozen=True)
class RunConfig:
    """One run: model, data, method with options, density, seed and training budget.

    ``options`` holds only the options the user gave that differ from the method's defaults
    (see :meth:`bench.grid.GridSpec.configs`), so spelling a default out loud, or a later release
    adding an option with a default, leaves the hash of every existing run unchanged.
    """

    arch: str
    dataset: str
    method: str
    density: float
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    preset: str = option(
        "adam", "training protocol of the paper's Table 4", choices=tuple(PRESETS)
    )
    epochs: int | None = option(
        None, "override the preset's epochs (default: the data set's CPU budget, else the "
        "preset's)", parse=positive_int
    )
    batch_size: int | None = option(None, "override the preset's batch size", parse=positive_int)
    train_subset: int | None = option(
        None, "train on the first N examples of the training split", parse=positive_int
    )
    accelerator: str = option("cpu", "Lightning accelerator", choices=ACCELERATORS)
    data_dir: str | None = option(None, "where to look for data set files")
    download: bool = option(False, "allow downloading data sets", flag_only=True)
    precision: str = option(
        "32",
        "training precision, Lightning's (32 is the paper's; other precisions are their own "
        "series)",
        choices=PRECISIONS,
    )
    channels_last: bool = option(
        False,
        "train in the channels-last memory layout (faster convolutions on GPUs; its own series)",
        flag_only=True,
    )
    spectrum: bool = option(
        False,
        "store the top singular values of the input-output Jacobian at initialisation (after "
        "pruning, before training) of every run trained",
        flag_only=True,
    )

    def identity(self) -> dict[str, Any]:
        """The canonical content of the config: identity fields whose value is not the default."""
        defaults = {f.name: _default(f) for f in dataclasses.fields(self)}
        identity: dict[str, Any] = {}
        for name, value in dataclasses.asdict(self).items():
            if name in NON_IDENTITY_FIELDS:
                continue
            if name in ("arch", "dataset", "method", "density", "seed") or value != defaults[name]:
                identity[name] = value
        return identity

    def config_hash(self) -> str:
        """SHA-256 of the sorted canonical JSON of :meth:`identity`, first 16 hex digits."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]

    def to_json(self) -> dict[str, Any]:
        """Every field, as stored in ``runs.config`` and carried by Optuna trials."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        """The inverse of :meth:`to_json`; keys this version does not know are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown RunConfig fields {unknown}")
        return cls(**data)

    @property
    def method_spec(self) -> str:
        """The CLI spelling ``name:key=value,...`` of the method and its options."""
        return method_spec(self.method, self.options)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def stream_seed(seed: int, stream: str) -> int:
    """A seed for one independent random stream of a run (init, allocation, data, ...).

    The one rule for splitting a run's seed: SHA-256 of ``"<seed>/<stream>"``, 63 bits.
    """
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF
