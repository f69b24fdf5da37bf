"""The shared iterative loop (methods/iterative.py): Iter-SNIP's revised failure rule
(methods-reference.md s.6) against a hand-written reference loop, and a method composed from it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import architectures
import methods
from methods.iterative import IterativeMethod, StepScorer
from methods.schedules import step_counts
from methods.scoring import ScoringCopy


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def oracle_topk(scores: np.ndarray, k: int, candidates: np.ndarray) -> np.ndarray:
    """Keep the k largest candidates, ties to the lower flat index (numpy stable argsort)."""
    values = np.where(candidates, scores.astype(np.float64), -np.inf)
    keep = np.zeros(values.size, dtype=bool)
    keep[np.argsort(-values, kind="stable")[:k]] = True
    return keep


def reference_itersnip(model: nn.Module, data: list, density: float, steps: int) -> np.ndarray:
    """FO's monotone loop written out: a fresh masked copy per step, ``|w * g|`` of the
    target-logit objective; a step with fewer positive scores than ``k_t`` keeps everything
    (the reference's zero threshold), which the harness allows only before any removal."""
    weights = architectures.prunable_parameters(model)
    total = sum(w.numel() for w in weights.values())
    alive = np.ones(total, dtype=bool)
    for step, k_t in enumerate(step_counts(density, steps, total), start=1):
        net = copy.deepcopy(model).train()
        layers = list(architectures.prunable_parameters(net).values())
        offset = 0
        with torch.no_grad():
            for w in layers:
                w.mul_(torch.from_numpy(alive[offset : offset + w.numel()]).view(w.shape))
                offset += w.numel()
        x, y = data[step - 1]
        F.nll_loss(net(x), y).backward()
        scores = torch.cat([(w * w.grad).detach().abs().reshape(-1) for w in layers]).numpy()
        positive = int((scores[alive] > 0).sum())
        if positive < k_t:
            assert alive.all() and step < steps, "the harness must raise here"
            continue
        alive = oracle_topk(scores, k_t, alive)
    return alive


def test_itersnip_on_bias_free_lenet5_skips_the_first_steps_and_keeps_exactly_k() -> None:
    """Dead ReLUs of a bias-free LeNet-5 leave fewer positive scores than k_1 at step 1 (s.6):
    the schedule goes on, pruning starts later, and the mask is the reference's."""
    model = architectures.build("lenet5", 10, input_shape=(3, 32, 32), seed=0)
    steps, density = 6, 0.3
    g = torch.Generator().manual_seed(5)
    data = [(torch.randn(32, 3, 32, 32, generator=g), torch.randint(0, 10, (32,), generator=g))
            for _ in range(steps)]
    total = architectures.count_prunable(model)
    k_1 = step_counts(density, steps, total)[0]
    allocation = methods.get("itersnip", steps=steps).allocate(
        model, density, context=methods.AllocationContext(batches=data)
    )
    assert allocation.info["skipped_steps"][:1] == [1]
    skipped = len(allocation.info["skipped_steps"])
    assert allocation.info["skipped_steps"] == list(range(1, skipped + 1))
    assert allocation.kept == round(density * total)
    got = torch.cat([m.reshape(-1) for m in allocation.masks.values()]).numpy()
    assert (got == reference_itersnip(model, data, density, steps)).all()
    scoring = ScoringCopy(model, architectures.prunable_layers(model), "cpu")
    scoring.model.train()
    F.nll_loss(scoring.model(data[0][0]), data[0][1]).backward()
    positive = sum(int(((w * w.grad).abs() > 0).sum()) for w in scoring.weights)
    assert positive < k_1, "the premise: step 1 has fewer positive scores than k_1"


def test_itersnip_still_raises_once_a_weight_has_been_removed() -> None:
    """Step 1 prunes (16 positive scores >= k_1 = 15); step 2's batch only reaches input 0,
    4 positive scores < k_2 = 10: zero saliency, as the reference would end dense (D.1)."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 4))
    g = torch.Generator().manual_seed(9)
    x1, x2 = torch.randn(12, 6, generator=g), torch.randn(12, 6, generator=g)
    x1[:, 4:] = 0
    x2[:, 1:] = 0
    y = torch.arange(12) % 4
    context = methods.AllocationContext(batches=[(x1, y), (x2, y), (x1, y)])
    assert step_counts(6 / 24, 3, 24) == [15, 10, 6]
    with pytest.raises(methods.AllocationFailed,
                       match=r"Iter-SNIP step 2/3: zero saliency, only 4 of 15 candidate"):
        methods.get("itersnip", steps=3).allocate(model, 6 / 24, context=context)
    force = methods.get("force", steps=3).allocate(  # FORCE restores the dense weights instead
        model, 6 / 24, context=methods.AllocationContext(batches=[(x1, y), (x2, y), (x1, y)])
    )
    assert force.info["dense_restart_steps"] == [2] and force.kept == 6


class MagnitudeSteps(StepScorer):
    """A score of a few lines: ``g = 1``, so the loop's saliency ``|w * g|`` is ``|w|``."""

    def __init__(self, model: nn.Module, layers: list, context: methods.AllocationContext) -> None:
        self.scoring = ScoringCopy(model, layers, context.device)

    def gradients(self) -> list[torch.Tensor]:
        return [torch.ones_like(w) for w in self.scoring.weights]

    def info(self) -> dict[str, Any]:
        return {"score": "|w|"}


class IterativeMagnitude(IterativeMethod):
    label = "magnitude"
    monotone = True
    shortfall = "fill"

    def __init__(self, steps: int = 5) -> None:
        self.steps = steps
        self.schedule = "exp"

    def scorer(self, model, layers, context):  # type: ignore[no-untyped-def]
        return MagnitudeSteps(model, layers, context)


def test_a_method_composed_from_the_loop_needs_only_its_score() -> None:
    model = architectures.build("mlp", 10, input_shape=(1, 8, 8), seed=0)
    allocation = IterativeMagnitude(steps=4).allocate(model, 0.05)
    weights = architectures.prunable_parameters(model)
    scores = {name: w.detach().abs() for name, w in weights.items()}
    expected = methods.global_topk(scores, allocation.kept)  # |w| never changes: one-shot top-k
    assert all(torch.equal(allocation.masks[n], expected[n]) for n in expected)
    assert allocation.info == {"score": "|w|", "zero_score_fill_steps": []}


def test_the_loop_rejects_a_restoring_monotone_method() -> None:
    with pytest.raises(TypeError, match="restore"):
        type("Broken", (IterativeMethod,), {"monotone": True, "shortfall": "restore"})
    with pytest.raises(TypeError, match="shortfall"):
        type("Broken", (IterativeMethod,), {"shortfall": "ignore"})
