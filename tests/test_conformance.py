"""Every registered method passes the plugin conformance check; the sanity controls do exactly
what they claim (methods/controls.py) and nothing else."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch

import architectures
import methods
from architectures.registry import kaiming_init_
from methods.controls import Controlled
from methods.testing import ConformanceError, check_method, synthetic_context


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", methods.available())
def test_every_registered_method_conforms(name: str) -> None:
    densities = (1.0,) if name == "dense" else (0.05, 0.3)  # dense only supports density 1
    report = check_method(name, densities=densities)
    assert report.passed, str(report)


def test_conformance_catches_a_broken_method() -> None:
    class OffByOne(methods.Method):
        name = "off_by_one"

        def select(self, model, layers, k, context):
            keep = methods.random_layer_masks(
                {layer.name: layer.weight.shape for layer in layers},
                {layer.name: 0 for layer in layers} | {layers[0].name: k - 1},
                context.generator,
            )
            return keep, {}

    class Mutating(methods.Method):
        name = "mutating"

        def select(self, model, layers, k, context):
            with torch.no_grad():
                layers[0].weight.mul_(2)
            return methods.get("epl").select(model, layers, k, context)

    class Greedy(methods.Method):
        name = "greedy"  # claims no data but reads batches
        needs_data = False

        def select(self, model, layers, k, context):
            next(context.iter_batches())
            return methods.get("epl").select(model, layers, k, context)

    with pytest.raises(AssertionError, match="kept"):
        check_method(OffByOne())
    with pytest.raises(ConformanceError, match="changed"):
        check_method(Mutating())
    with pytest.raises(ConformanceError, match="asked for batches"):
        check_method(Greedy())


# ------------------------------------------------------------------------------------------
# Sanity controls
# ------------------------------------------------------------------------------------------
def small_cnn() -> torch.nn.Module:
    return architectures.build("small_cnn", 10, input_shape=(1, 8, 8), seed=0)


@pytest.mark.parametrize("name,options", [("snip", {}), ("synflow", {"steps": 5}),
                                          ("epf", {})])
def test_shuffle_keeps_layer_counts_and_redraws_positions(name: str, options: dict) -> None:
    model = small_cnn()
    plain = methods.get(name, **options).allocate(model, 0.1, context=synthetic_context(0))
    method = methods.get(name, shuffle="layer", **options)
    assert isinstance(method, Controlled) and method.options()["shuffle"] == "layer"
    shuffled = method.allocate(model, 0.1, context=synthetic_context(0))
    again = method.allocate(model, 0.1, context=synthetic_context(0))
    assert [layer.kept for layer in shuffled.layers()] == [layer.kept for layer in plain.layers()]
    assert any(not torch.equal(plain.masks[n], shuffled.masks[n]) for n in plain.masks)
    assert all(torch.equal(shuffled.masks[n], again.masks[n]) for n in plain.masks)
    assert shuffled.info["controls"] == {"shuffle": "layer", "reinit": False}
    assert {k: v for k, v in shuffled.info.items() if k != "controls"} == plain.info


def test_shuffle_positions_are_the_generators_uniform_draw() -> None:
    """SNIP draws nothing from the generator, so the shuffle is exactly randperm per layer."""
    model = small_cnn()
    plain = methods.get("snip").allocate(model, 0.1, context=synthetic_context(4))
    shuffled = methods.get("snip", shuffle="layer").allocate(
        model, 0.1, context=synthetic_context(4)
    )
    expected = methods.random_layer_masks(
        {n: m.shape for n, m in plain.masks.items()},
        {layer.name: layer.kept for layer in plain.layers()},
        torch.Generator().manual_seed(4),
    )
    assert all(torch.equal(shuffled.masks[n], expected[n]) for n in expected)


def test_reinit_keeps_the_mask_and_redraws_only_the_kept_weights() -> None:
    model = small_cnn()
    plain = methods.get("snip").allocate(model, 0.1, context=synthetic_context(0))
    method = methods.get("snip", reinit="true")
    reinit = method.allocate(model, 0.1, context=synthetic_context(0))
    assert all(torch.equal(plain.masks[n], reinit.masks[n]) for n in plain.masks)
    seed = reinit.info["controls"]["reinit_seed"]
    assert reinit.info["controls"]["reinit"] is True

    plain_model = plain.apply(copy.deepcopy(model))
    reinit_model = reinit.apply(copy.deepcopy(model))
    expected = copy.deepcopy(model)
    kaiming_init_(expected, torch.Generator().manual_seed(seed))
    weights = architectures.prunable_parameters(expected)
    for layer in architectures.prunable_layers(reinit_model):
        mask = reinit.masks[layer.name]
        assert torch.equal(layer.module.weight, weights[layer.name] * mask)  # fresh, masked
        original = architectures.prunable_parameters(model)[layer.name]
        assert not torch.equal(layer.module.weight[mask], original[mask])
    prunable = set(architectures.prunable_parameters(model))
    plain_state, reinit_state = plain_model.state_dict(), reinit_model.state_dict()
    for key, value in plain_state.items():  # biases, BatchNorm, masks: as without reinit
        if not key.startswith(tuple(p.rsplit(".", 1)[0] + ".parametrizations" for p in prunable)):
            assert torch.equal(value, reinit_state[key]), key
    for name, mask in reinit.masks.items():
        module = dict(reinit_model.named_modules())[name.rsplit(".", 1)[0]]
        assert torch.equal(module.parametrizations.weight[0].mask, mask)
    again = method.allocate(model, 0.1, context=synthetic_context(0))
    assert again.info["controls"]["reinit_seed"] == seed


def test_controls_compose_and_parse_from_the_cli_spelling() -> None:
    name, options = methods.parse_spec("synflow:steps=4,shuffle=layer,reinit=true")
    method = methods.get(name, **options)
    assert method.options() == {"steps": 4, "schedule": "exp", "dtype": "float64",
                                "shuffle": "layer", "reinit": True}
    plain = methods.get("synflow", steps=4).allocate(small_cnn(), 0.05,
                                                     context=synthetic_context(0))
    both = method.allocate(small_cnn(), 0.05, context=synthetic_context(0))
    assert [layer.kept for layer in both.layers()] == [layer.kept for layer in plain.layers()]
    with pytest.raises(methods.UnknownMethod, match="shuffle"):
        methods.get("snip", shuffle="row")
    with pytest.raises(ValueError, match="reinit"):
        methods.get("dctps", reinit=True)
    assert type(methods.get("snip", shuffle="none", reinit=False)).__name__ == "Snip"


def test_controlled_methods_conform() -> None:
    check_method("snip", options={"shuffle": "layer", "reinit": True})
    check_method("epl", options={"shuffle": "layer"})
