"""The budget passed to ``select`` (methods.Budget): an int ``k`` carrying the requested density,
so schedules use ``d`` itself and plugins written for ``select(model, layers, k, context)`` work."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch

import architectures
import methods
import methods.iterative
from methods.testing import check_method, synthetic_context


def mlp() -> torch.nn.Module:
    return architectures.build("mlp", 10, input_shape=(1, 8, 8), seed=0)


def test_budget_is_the_int_k_with_density_and_total() -> None:
    budget = methods.Budget(6, 0.25, 24)
    assert isinstance(budget, int) and budget == 6 and budget.k == 6 and type(budget.k) is int
    assert (budget.density, budget.total) == (0.25, 24)
    assert budget - 1 == 5 and list(range(budget)) == list(range(6))
    assert torch.topk(torch.arange(10.0), budget).values.numel() == 6 and len([0] * budget) == 6
    assert str(budget) == "6" and f"k = {budget}" == "k = 6" and json.dumps(budget) == "6"
    assert repr(budget) == "Budget(k=6, density=0.25, total=24)"
    for clone in (copy.deepcopy(budget), pickle.loads(pickle.dumps(budget))):
        assert type(clone) is methods.Budget
        assert (clone.k, clone.density, clone.total) == (6, 0.25, 24)
    with pytest.raises(AttributeError, match="immutable"):
        budget.density = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match="outside"):
        methods.Budget(25, 1.0, 24)
    with pytest.raises(TypeError, match="integer"):
        methods.Budget(2.5, 0.1, 24)  # type: ignore[arg-type]


def test_as_budget_gives_a_plain_int_the_density_k_over_n() -> None:
    assert methods.as_budget(6, 24).density == 0.25
    budget = methods.Budget(6, 0.26, 24)
    assert methods.as_budget(budget, 24) is budget
    with pytest.raises(ValueError, match="24"):
        methods.as_budget(budget, 30)


def test_an_old_style_plugin_using_k_as_an_int_still_works() -> None:
    class OldStyle(methods.Method):
        name = "old_style"

        def select(self, model, layers, k, context):  # the first contract: k is an int
            first = {layers[0].name: min(k - 1, layers[0].numel)}
            counts = methods.layer_counts(layers[1:], k - sum(first.values()), "uniform")
            masks = methods.random_layer_masks(
                {layer.name: layer.weight.shape for layer in layers},
                {**first, **{layer.name: c for layer, c in zip(layers[1:], counts)}},
                context.generator,
            )
            scores = {layer.name: layer.weight.detach().abs() for layer in layers}
            assert sum(int(m.sum()) for m in methods.global_topk(scores, k).values()) == k
            return masks, {"k": k}

    allocation = OldStyle().allocate(mlp(), 0.1)
    assert allocation.kept == round(0.1 * architectures.count_prunable(mlp()))
    assert json.loads(json.dumps(allocation.info)) == {"k": allocation.kept}
    check_method(OldStyle())


@pytest.mark.parametrize("options", [{}, {"shuffle": "layer"}])
@pytest.mark.parametrize("name", ["synflow", "force", "itersnip"])
def test_schedules_use_the_requested_density(
    name: str, options: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``allocate(d)`` schedules with ``d`` itself (s.1 rule 3), also through a control;
    ``select`` called with a plain int ``k`` schedules with ``k / N``."""
    seen: list[float] = []
    real = methods.iterative.step_counts

    def spy(density: float, steps: int, total: int, schedule: str = "exp") -> list[int]:
        seen.append(density)
        return real(density, steps, total, schedule)  # type: ignore[arg-type]

    monkeypatch.setattr(methods.iterative, "step_counts", spy)
    model = mlp()
    total = architectures.count_prunable(model)
    density = 0.1234567
    method = methods.get(name, steps=3, **options)
    allocation = method.allocate(model, density, context=synthetic_context(0))
    assert seen == [density] and allocation.kept == round(density * total)
    layers = architectures.prunable_layers(model)
    k = round(density * total)
    masks, _ = method.select(model, layers, k, synthetic_context(0))
    assert seen[1] == k / total != density
    assert sum(int(m.sum()) for m in masks.values()) == k
