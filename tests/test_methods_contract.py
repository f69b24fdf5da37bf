"""What ``Method.allocate`` guarantees around any method: the model's every train/eval flag,
a crash (not a failed allocation) for a broken result, the density check, and the method's own
training learning rate (DCTpS under SGD, paper Table 4's note)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import architectures
import methods
from methods.testing import synthetic_context


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 3, bias=False)
        self.fc2 = nn.Linear(3, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class KeepsFirst(methods.Method):
    """Keeps the first ``counts[layer]`` weights of each layer, whatever ``k`` is."""

    name = "bad"

    def __init__(self, counts: tuple[int, ...] = (5, 2)) -> None:
        self.counts = counts

    def select(self, model, layers, budget, context):
        masks = {}
        for layer, count in zip(layers, self.counts):
            mask = torch.zeros(layer.numel, dtype=torch.bool)
            mask[:count] = True
            masks[layer.name] = mask.reshape(layer.weight.shape)
        return masks, {}


def test_a_wrong_count_is_a_contract_error_naming_the_layers() -> None:
    with pytest.raises(methods.MethodContractError) as error:
        KeepsFirst().allocate(TwoLayers(), 0.25)  # N = 24, k = 6
    assert str(error.value) == (
        "method 'bad' kept 7 weights instead of k = 6 (per layer: fc1.weight 5, fc2.weight 2)"
    )
    assert isinstance(error.value, RuntimeError)
    assert not isinstance(error.value, methods.AllocationFailed)
    assert KeepsFirst((4, 2)).allocate(TwoLayers(), 0.25).kept == 6


def test_masks_not_matching_the_layers_are_a_contract_error() -> None:
    class Missing(KeepsFirst):
        def select(self, model, layers, budget, context):
            masks, info = super().select(model, layers, budget, context)
            return {"fc1.weight": masks["fc1.weight"]}, info

    class Reshaped(KeepsFirst):
        def select(self, model, layers, budget, context):
            masks, info = super().select(model, layers, budget, context)
            return {name: mask.reshape(-1) for name, mask in masks.items()}, info

    with pytest.raises(methods.MethodContractError, match=r"missing: \['fc2.weight'\]"):
        Missing((4, 2)).allocate(TwoLayers(), 0.25)
    with pytest.raises(methods.MethodContractError, match=r"shape \(12,\) for fc1.weight"):
        Reshaped((4, 2)).allocate(TwoLayers(), 0.25)


def mixed_flags_cnn() -> nn.Module:
    """small_cnn in train mode with its second BatchNorm in eval (frozen statistics)."""
    model = architectures.build("small_cnn", 10, input_shape=(1, 8, 8), seed=0).train()
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    batchnorms[1].eval()
    return model


@pytest.mark.parametrize("top", [True, False])
@pytest.mark.parametrize("name", methods.available())
def test_allocate_leaves_every_submodule_flag_as_it_was(name: str, top: bool) -> None:
    model = mixed_flags_cnn()
    model.training = top  # top-level flag differs from some children's either way
    flags = [m.training for m in model.modules()]
    assert len(set(flags)) == 2
    options = {"steps": 2} if name in ("force", "itersnip", "synflow") else {}
    density = 1.0 if name == "dense" else 0.3
    methods.get(name, **options).allocate(model, density, context=synthetic_context(0))
    assert [m.training for m in model.modules()] == flags


def test_flags_are_restored_when_select_flips_them_or_fails() -> None:
    class Flipper(methods.Method):
        name = "flipper"

        def select(self, model, layers, budget, context):
            model.train()
            raise methods.AllocationFailed("flipped, then failed")

    model = mixed_flags_cnn()
    flags = [m.training for m in model.modules()]
    with pytest.raises(methods.AllocationFailed):
        Flipper().allocate(model, 0.5)
    assert [m.training for m in model.modules()] == flags


def test_check_density_names_a_value_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match=r"^density 'abc' is not a number$"):
        methods.check_density("abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^density None is not a number$"):
        methods.check_density(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^density 1.5 is outside \(0, 1\]$"):
        methods.check_density(1.5)
    assert methods.check_density("0.25") == 0.25  # type: ignore[arg-type]


def test_dctps_trains_with_its_own_sgd_learning_rate() -> None:
    dctps = methods.get("dctps")
    assert dctps.learning_rate("sgd", 0.1) == 0.03
    assert dctps.learning_rate("SGD", 0.1) == 0.03
    assert dctps.learning_rate("adam", 1e-3) == 1e-3
    assert methods.get("dctps", shuffle="layer").learning_rate("sgd", 0.1) == 0.03
    for name in methods.available():
        if name != "dctps":
            assert methods.get(name).learning_rate("sgd", 0.1) == 0.1
    with pytest.raises(TypeError):
        methods.method_class("dctps").lr_overrides["sgd"] = 1.0  # type: ignore[index]


def test_a_plugin_declares_its_learning_rate_overrides() -> None:
    class Slow(methods.Method):
        lr_overrides = {"adam": 1e-4}  # noqa: RUF012

    assert Slow().learning_rate("adam", 1e-3) == 1e-4
    assert Slow().learning_rate("sgd", 0.1) == 0.1
