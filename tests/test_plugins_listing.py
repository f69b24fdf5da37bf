"""bench.listing: the frames behind 'bench methods', 'bench archs' and 'bench datasets', with
built-in rows, plugin rows and their origins."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from torch import nn

import architectures
import bench.data
import methods
from architectures import registry as arch_registry
from bench import listing
from bench.data import registry as data_registry
from methods import registry as method_registry


@pytest.fixture
def clean_registries() -> Iterator[None]:
    saved = (
        dict(method_registry._REGISTRY),
        dict(arch_registry._ARCHS),
        dict(data_registry.DATASETS),
    )
    yield
    for registry, before in zip(
        (method_registry._REGISTRY, arch_registry._ARCHS, data_registry.DATASETS), saved
    ):
        registry.clear()
        registry.update(before)


def test_methods_frame() -> None:
    frame = listing.methods_frame().set_index("method")
    assert list(frame.columns) == ["needs_data", "options", "origin", "description"]
    assert sorted(frame.index) == methods.available()
    assert frame.loc["snip", "needs_data"] and not frame.loc["random", "needs_data"]
    assert frame.loc["epf", "options"] == "within='layer' (layer|filter)"
    assert frame.loc["epl", "options"] == "-"
    assert set(frame["origin"]) == {"built-in"}


def test_archs_frame_counts_table_2_and_shows_origin(clean_registries: None) -> None:
    @architectures.register(
        "only_wide", accepts=lambda shape: shape == (1, 1, 13), accepts_text="wine rows only"
    )
    def only_wide(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(13, num_classes))

    @architectures.register("never")
    def never(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        raise RuntimeError("cannot build")

    bench.data.register("wine_rows", input_shape=(1, 1, 13), num_classes=3)(lambda: None)
    frame = listing.archs_frame().set_index("arch")
    assert list(frame.columns) == listing.ARCH_COLUMNS[1:]
    resnet18 = frame.loc["resnet18"]
    assert (resnet18["weights"], resnet18["bias+BN"], resnet18["total"]) == (
        11_164_352,
        9_610,
        11_173_962,
    )
    assert (resnet18["prunable layers"], resnet18["counted at"]) == (21, "3x32x32")
    assert resnet18["origin"] == "built-in"
    assert frame.loc["lenet5", "accepts"] == architectures.spec("lenet5").accepts_text
    # An architecture taking only a plugin data set's shape is counted at that shape.
    assert frame.loc["only_wide", "counted at"] == "1x1x13"
    assert frame.loc["only_wide", "weights"] == 13 * 10
    assert frame.loc["only_wide", "origin"].startswith(f"{__name__} (")
    # A builder that fails keeps its row and says why.
    assert frame.loc["never", "counted at"] == "failed: RuntimeError: cannot build"
    assert pd.isna(frame.loc["never", "weights"])


def test_archs_frame_without_an_accepted_shape(clean_registries: None) -> None:
    architectures.register("nothing_fits", accepts=lambda shape: False)(
        lambda num_classes, input_shape: nn.Linear(1, num_classes)
    )
    row = listing.archs_frame().set_index("arch").loc["nothing_fits"]
    assert row["counted at"] == "no known input shape" and pd.isna(row["weights"])


def test_datasets_frame(clean_registries: None) -> None:
    bench.data.register(
        "tiny_rows", input_shape=(1, 1, 5), num_classes=4, batches_per_step=2, description="rows"
    )(lambda: None)
    frame = listing.datasets_frame().set_index("dataset")
    assert list(frame.columns) == listing.DATASET_COLUMNS[1:]
    assert list(frame.index[:5]) == [
        "digits",
        "fashion-mnist",
        "cifar10",
        "cifar100",
        "tiny-imagenet",
    ]
    assert frame.loc["digits", "input shape"] == "1x8x8" and frame.loc["digits", "classes"] == 10
    assert frame.loc["digits", "default epochs"] == 50
    assert frame["default epochs"].isna()["cifar10"]
    assert frame.loc["tiny-imagenet", "classes"] == 200
    assert frame["batches per step"].to_dict() == {
        "digits": 1,
        "fashion-mnist": 1,
        "cifar10": 1,
        "cifar100": 10,
        "tiny-imagenet": 20,
        "tiny_rows": 2,
    }
    assert frame.loc["cifar10", "default arch"] == "resnet18"
    assert frame.loc["tiny_rows", "description"] == "rows"
    assert frame.loc["tiny_rows", "origin"].startswith(f"{__name__} (")
    assert set(frame["origin"].drop("tiny_rows")) == {"built-in"}


def test_descriptions_are_never_inherited(clean_registries: None) -> None:
    class Undocumented(nn.Module):
        def __init__(self, num_classes: int, input_shape: tuple[int, int, int]) -> None:
            super().__init__()
            self.fc = nn.Linear(1, num_classes)

    architectures.register("undocumented")(Undocumented)
    bench.data.register(input_shape=(1, 1, 1), num_classes=2)(
        type("quiet", (bench.data.TensorDataModule,), {})
    )
    assert architectures.spec("undocumented").description == ""
    assert bench.data.dataset_spec("quiet").description == ""
    assert listing.datasets_frame().set_index("dataset").loc["quiet", "classes"] == 2
