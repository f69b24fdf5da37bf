"""Study presets: named, documented grids that re-run a whole study with one command.

A study is a union of blocks; each block is an ordinary grid (a :class:`~bench.grid.GridSpec`,
with the dense baseline) at its own CPU budget. ``bench run --study paper-mini`` expands the
study named ``paper-mini`` into configs exactly as ``bench run`` would expand the same lists
given by hand, so a study's runs are ordinary runs: the same hashes, resumable, shareable
between workers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bench.config import RunConfig
from bench.errors import BenchError
from bench.grid import DENSITY_GRID, GridSpec

# The methods the paper compares (Table 1, Figures 2-3) plus the dense baseline, which every
# grid adds. ``itersnip`` is the monotone variant that the paper ran under the name FORCE
# (methods-reference.md section 6); both are studied, each under its own name.
PAPER_METHODS: tuple[str, ...] = (
    "random",
    "epl",
    "snip",
    "grasp",
    "force",
    "itersnip",
    "synflow",
    "dctps",
)


@dataclass(frozen=True)
class Block:
    """One grid of a study at its own budget, and why it was chosen.

    ``name`` selects the block on the command line (``bench run --study S --block NAME``), so a
    study too long for one sitting runs in parts; ``part`` groups blocks in the study's
    document (e.g. the short budget kept beside the long one, never averaged with it).
    """

    grid: GridSpec
    why: str = ""
    name: str = ""
    part: str = ""

    def size(self) -> int:
        """Runs in the block, dense baselines included."""
        return self.grid.size()

    def budget(self) -> str:
        """The block's budget in words, e.g. ``adam, epochs 10, train subset 5000``."""
        settings = self.grid.settings
        parts = [settings.get("preset", "adam")]
        parts += [
            f"{name.replace('_', ' ')} {settings[name]}"
            for name in ("epochs", "train_subset", "batch_size")
            if settings.get(name) is not None
        ]
        return ", ".join(parts)


@dataclass(frozen=True)
class Study:
    """A named study: its blocks and the database its results go to unless --db says otherwise."""

    name: str
    description: str
    blocks: tuple[Block, ...]
    db: str

    def size(self) -> int:
        """Runs in the study (blocks never share a config)."""
        return sum(block.size() for block in self.blocks)

    def only(self, names: tuple[str, ...] | list[str]) -> Study:
        """The study cut down to the blocks ``names`` (all when empty); an unknown name is an
        error naming the valid ones."""
        if not names:
            return self
        valid = [block.name for block in self.blocks]
        unknown = [name for name in names if name not in valid]
        if unknown:
            raise BenchError(
                f"unknown block {unknown[0]!r} of study {self.name} (valid: {', '.join(valid)})"
            )
        return replace(self, blocks=tuple(b for b in self.blocks if b.name in names))


PAPER_MINI_SEEDS = (0, 1, 2)

# The long budget's grid adds EPF and Hyperplane Projection (the paper's Figure 1 baseline).
LONG_METHODS: tuple[str, ...] = (*PAPER_METHODS, "epf", "hyperplane")

SHORT = "short budget"
LONG = "long budget"
CHECK = "budget check"


def _paper_block(
    name: str,
    arch: str,
    dataset: str,
    why: str,
    part: str = SHORT,
    methods: tuple[str, ...] = PAPER_METHODS,
    densities: tuple[float, ...] = DENSITY_GRID,
    seeds: tuple[int, ...] = PAPER_MINI_SEEDS,
    **budget: Any,
) -> Block:
    """The paper's methods over its density grid, 3 seeds, spectra stored (claim 4)."""
    grid = GridSpec(
        methods=methods,
        densities=densities,
        seeds=seeds,
        archs=(arch,),
        datasets=(dataset,),
        settings={"spectrum": True, **budget},
    )
    return Block(grid, why, name, part)


def _dense_block(name: str, arch: str, seeds: tuple[int, ...], why: str, **budget: Any) -> Block:
    """The dense network alone at twice a long block's budget: is that budget long enough?"""
    grid = GridSpec(
        methods=(),
        densities=(),
        seeds=seeds,
        archs=(arch,),
        datasets=("fashion-mnist",),
        settings=budget,
    )
    return Block(grid, why, name, CHECK)


# Fashion-MNIST with a 10,000-image subset trains on 9,000 (10% validates): 141 steps of 64 per
# LeNet-5 epoch, so 30 epochs are 4,230 steps. A 20,000-image subset at batch 128 is 141 steps
# per ResNet epoch, 15 epochs 2,115 steps.
LENET_LONG = {"epochs": 30, "train_subset": 10000}
RESNET_LONG = {"epochs": 15, "train_subset": 20000}


STUDIES: dict[str, Study] = {
    "paper-mini": Study(
        name="paper-mini",
        description=(
            "the paper's comparison at CPU scale: every method of the paper over its density grid, "
            "3 seeds, on digits (MLP) and Fashion-MNIST (LeNet-5 and a quarter-width ResNet18), "
            "plus the Fixup ResNet-110 failure check. The short budget took about an hour on 2 "
            "cores with --workers 2; the long budget needs 7-9 more CPU-hours, so run it in "
            "parts (--block)"
        ),
        db="sqlite:///paper-mini.db",
        blocks=(
            _paper_block(
                "lenet5-long",
                "lenet5",
                "fashion-mnist",
                "LeNet-5 long enough for DCTpS to leave its starting point (it needs 1,000-2,500 "
                "Adam steps): 10,000 images, 30 epochs of batch 64 (4,230 optimizer steps), with "
                "EPF and Hyperplane Projection for Figure 1; about 2.5 CPU-hours",
                LONG,
                methods=LONG_METHODS,
                **LENET_LONG,
            ),
            _dense_block(
                "lenet5-check",
                "lenet5",
                PAPER_MINI_SEEDS,
                "dense LeNet-5 at twice lenet5-long's budget (60 epochs): is 30 enough?",
                epochs=2 * LENET_LONG["epochs"],
                train_subset=LENET_LONG["train_subset"],
            ),
            _paper_block(
                "resnet18-long",
                "resnet18_w16",
                "fashion-mnist",
                "the BatchNorm network at densities 1%, 0.1%, 0.01%, seed 0: 20,000 images, 15 "
                "epochs of batch 128 (2,115 optimizer steps); 3-4 hours with 2 workers",
                LONG,
                methods=LONG_METHODS,
                densities=(0.01, 0.001, 0.0001),
                seeds=(0,),
                **RESNET_LONG,
            ),
            _dense_block(
                "resnet18-check",
                "resnet18_w16",
                (0,),
                "dense quarter-width ResNet18 at twice resnet18-long's budget (30 epochs)",
                epochs=2 * RESNET_LONG["epochs"],
                train_subset=RESNET_LONG["train_subset"],
            ),
            _paper_block(
                "mlp-short",
                "mlp",
                "digits",
                "digits is 8x8: LeNet-5 and the ResNets need 28x28 or more, so digits gets its own "
                "MLP; 50 epochs is the digits default budget",
                epochs=50,
            ),
            _paper_block(
                "lenet5-short",
                "lenet5",
                "fashion-mnist",
                "LeNet-5 with the paper's batch 64 (Table 4): 5,000 training images, 10 epochs "
                "(790 optimizer steps)",
                epochs=10,
                train_subset=5000,
            ),
            _paper_block(
                "resnet18-short",
                "resnet18_w16",
                "fashion-mnist",
                "ResNet18 at a quarter of its width (the full one costs 16x as much): 2,000 "
                "training images, 3 epochs",
                epochs=3,
                train_subset=2000,
            ),
            Block(
                GridSpec(
                    methods=("snip", "force", "itersnip", "synflow"),
                    densities=(0.01,),
                    seeds=(0,),
                    archs=("fixup_resnet110",),
                    datasets=("fashion-mnist",),
                    settings={"epochs": 1, "train_subset": 500},
                ),
                why="claim 3: the saliency methods must fail on Fixup's zero-initialised layers; "
                "the dense baseline trains one short epoch so the table has its row",
                name="fixup",
                part=SHORT,
            ),
        ),
    ),
}


def get_study(name: str) -> Study:
    """The study ``name`` or an error naming the valid ones."""
    try:
        return STUDIES[name]
    except KeyError:
        raise BenchError(f"unknown study {name!r} (valid: {', '.join(STUDIES)})") from None


def study_configs(study: Study, **common: Any) -> list[RunConfig]:
    """Every config of ``study``, each block expanded as ``bench run`` expands a grid.

    ``common`` holds the settings that say where runs execute (accelerator, data_dir, download);
    a block's own spectrum flag is OR-ed with ``common['spectrum']``.
    """
    spectrum = common.pop("spectrum", False)
    configs: list[RunConfig] = []
    for block in study.blocks:
        own = block.grid.settings.get("spectrum", False)
        configs.extend(block.grid.with_settings(**common, spectrum=own or spectrum).configs())
    return configs
