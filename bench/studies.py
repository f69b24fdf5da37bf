"""Study presets: named, documented grids that re-run a whole study with one command.

A study is a union of blocks; each block is an ordinary grid (a :class:`~bench.grid.GridSpec`,
with the dense baseline) at its own CPU budget. ``bench run --study paper-mini`` expands the
study named ``paper-mini`` into configs exactly as ``bench run`` would expand the same lists
given by hand, so a study's runs are ordinary runs: the same hashes, resumable, shareable
between workers.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """One grid of a study at its own budget, and why it was chosen."""

    grid: GridSpec
    why: str = ""

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


PAPER_MINI_SEEDS = (0, 1, 2)


def _paper_block(arch: str, dataset: str, why: str, **budget: Any) -> Block:
    """Every paper method over the whole density grid, 3 seeds, spectra stored (claim 4)."""
    grid = GridSpec(
        methods=PAPER_METHODS,
        densities=DENSITY_GRID,
        seeds=PAPER_MINI_SEEDS,
        archs=(arch,),
        datasets=(dataset,),
        settings={"spectrum": True, **budget},
    )
    return Block(grid, why)


STUDIES: dict[str, Study] = {
    "paper-mini": Study(
        name="paper-mini",
        description=(
            "the paper's comparison at CPU scale: every method of the paper over its density grid, "
            "3 seeds, on digits (MLP) and Fashion-MNIST (LeNet-5 and a quarter-width ResNet18), "
            "plus the Fixup ResNet-110 failure check; about an hour on 2 cores with --workers 2"
        ),
        db="sqlite:///paper-mini.db",
        blocks=(
            _paper_block(
                "mlp",
                "digits",
                "digits is 8x8: LeNet-5 and the ResNets need 28x28 or more, so digits gets its own "
                "MLP; 50 epochs is the digits default budget",
                epochs=50,
            ),
            _paper_block(
                "lenet5",
                "fashion-mnist",
                "LeNet-5 with the paper's batch 64 (Table 4): 5,000 training images, 10 epochs "
                "(790 optimizer steps)",
                epochs=10,
                train_subset=5000,
            ),
            _paper_block(
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
