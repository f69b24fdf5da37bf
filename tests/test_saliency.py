"""Saliency methods against hand-computed oracles (methods-reference.md s.3-s.6).

Closed forms on a two-layer linear chain and a tiny CNN (SNIP, SynFlow), a finite-difference
Hessian-vector product (GraSP), models where FORCE's answer is known, the failure rules, the
schedules, and the survivors' complement selection against a numpy stable-argsort oracle.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import architectures
import methods
from methods.grasp import grasp_scores
from methods.schedules import step_counts
from methods.scoring import ScoringCopy
from methods.selection import select_top
from methods.snip import snip_scores
from methods.survivors import Survivors
from methods.synflow import synflow_scores
from methods.testing import synthetic_context


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is faster, and immune to a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def chain(sizes: tuple[int, int, int] = (6, 5, 4), seed: int = 0) -> nn.Sequential:
    """Linear(n0 -> n1) then Linear(n1 -> n2), no bias, no nonlinearity, float64."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(sizes[0], sizes[1], bias=False),
                          nn.Linear(sizes[1], sizes[2], bias=False)).double()
    return model


def batches(n: int, b: int, features: int, classes: int, seed: int = 1) -> list:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(b, features, generator=g, dtype=torch.float64),
         torch.randperm(b, generator=g) % classes)
        for _ in range(n)
    ]


def context_of(data: list, **kwargs) -> methods.AllocationContext:
    return methods.AllocationContext(batches=data, **kwargs)


def oracle_topk(scores: np.ndarray, k: int, candidates: np.ndarray | None = None) -> np.ndarray:
    """Keep the k largest, ties to the lower flat index (numpy stable argsort)."""
    values = scores.astype(np.float64).copy()
    if candidates is not None:
        values[~candidates] = -np.inf
    order = np.argsort(-values, kind="stable")
    keep = np.zeros(values.size, dtype=bool)
    keep[order[:k]] = True
    return keep


def flat(masks: dict[str, torch.Tensor]) -> np.ndarray:
    return torch.cat([m.reshape(-1) for m in masks.values()]).numpy()


def layers_of(model: nn.Module) -> list[architectures.PrunableLayer]:
    return architectures.prunable_layers(model)


# ------------------------------------------------------------------------------------------
# SNIP
# ------------------------------------------------------------------------------------------
def chain_ce_grads(w1: torch.Tensor, w2: torch.Tensor, data: list) -> tuple[torch.Tensor, ...]:
    """Closed-form sum over batches of d mean-CE / dW for z = W2 W1 x."""
    g1, g2 = torch.zeros_like(w1), torch.zeros_like(w2)
    for x, y in data:
        h = x @ w1.T
        z = h @ w2.T
        dz = (torch.softmax(z, dim=1) - F.one_hot(y, z.shape[1]).double()) / x.shape[0]
        g2 += dz.T @ h
        g1 += (dz @ w2).T @ x
    return g1, g2


def test_snip_scores_equal_closed_form_on_linear_chain() -> None:
    model = chain()
    data = batches(2, 8, 6, 4)
    w1, w2 = model[0].weight.detach(), model[1].weight.detach()
    g1, g2 = chain_ce_grads(w1, w2, data)
    scoring = ScoringCopy(model, layers_of(model), "cpu")
    scoring.model.eval()
    scores = snip_scores(scoring, data, F.cross_entropy, methods.PassCounter())
    torch.testing.assert_close(scores[0], (w1 * g1).abs(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(scores[1], (w2 * g2).abs(), rtol=1e-12, atol=1e-14)

    k = 13
    allocation = methods.get("snip", examples=16, batch_size=8).allocate(
        model, k / 50, context=context_of(data)
    )
    expected = oracle_topk(torch.cat([(w1 * g1).abs().reshape(-1),
                                      (w2 * g2).abs().reshape(-1)]).numpy(), k)
    assert (flat(allocation.masks) == expected).all()
    assert allocation.info["data"]["batches"] == 2 and allocation.info["data"]["examples"] == 16
    assert allocation.cost.forward_passes == 2 and allocation.cost.backward_passes == 2


def tiny_cnn(seed: int = 0) -> nn.Sequential:
    """Conv2d(2 -> 3, 3x3, no padding) on 2x5x5, ReLU, flatten, Linear(27 -> 4); float64."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.ReLU(), nn.Flatten(),
                         nn.Linear(27, 4)).double()


def test_snip_scores_equal_closed_form_on_tiny_cnn() -> None:
    model = tiny_cnn()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 2, 5, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    w1, w2, b2 = model[0].weight.detach(), model[3].weight.detach(), model[3].bias.detach()
    # Closed form: the conv is a matrix product with the unfolded patches.
    patches = F.unfold(x, 3)  # (B, 18, 9): column p holds patch p, channel-major
    a = torch.einsum("of,bfp->bop", w1.reshape(3, 18), patches)  # (B, 3, 9)
    h = a.clamp_min(0).reshape(6, 27)
    z = h @ w2.T + b2
    dz = (torch.softmax(z, 1) - F.one_hot(y, 4).double()) / 6
    g2 = dz.T @ h
    dh = (dz @ w2).reshape(6, 3, 9) * (a > 0)
    g1 = torch.einsum("bop,bfp->of", dh, patches).reshape(w1.shape)
    scoring = ScoringCopy(model, layers_of(model), "cpu")
    scoring.model.eval()
    scores = snip_scores(scoring, [(x, y)], F.cross_entropy, methods.PassCounter())
    torch.testing.assert_close(scores[0], (w1 * g1).abs(), rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(scores[1], (w2 * g2).abs(), rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------------------------------
# SynFlow
# ------------------------------------------------------------------------------------------
def chain_synflow_scores(w1: np.ndarray, w2: np.ndarray, m1: np.ndarray, m2: np.ndarray):
    """R = 1^T |W2 m2| |W1 m1| 1: dR/dW2[i,j] = (|W1| 1)_j, dR/dW1[j,k] = (1^T |W2|)_j."""
    a1, a2 = np.abs(w1) * m1, np.abs(w2) * m2
    s2 = a2 * (a1 @ np.ones(a1.shape[1]))[None, :]
    s1 = a1 * (np.ones(a2.shape[0]) @ a2)[:, None]
    return s1, s2


def synflow_oracle(w1: np.ndarray, w2: np.ndarray, density: float, steps: int) -> np.ndarray:
    """The whole iterative SynFlow on a chain, by hand: top k_t among survivors, zero fill."""
    n = w1.size + w2.size
    alive = np.ones(n, dtype=bool)
    for k_t in step_counts(density, steps, n):
        m1, m2 = alive[: w1.size].reshape(w1.shape), alive[w1.size :].reshape(w2.shape)
        s1, s2 = chain_synflow_scores(w1, w2, m1, m2)
        alive = oracle_topk(np.concatenate([s1.ravel(), s2.ravel()]), k_t, alive)
    return alive


def test_synflow_scores_equal_closed_form_on_linear_chain() -> None:
    model = chain((7, 5, 3))
    w1, w2 = (model[i].weight.detach().numpy() for i in (0, 1))
    scores = synflow_scores(model, layers_of(model), (7,))
    s1, s2 = chain_synflow_scores(w1, w2, np.ones_like(w1), np.ones_like(w2))
    np.testing.assert_allclose(scores["0.weight"].numpy(), s1, rtol=1e-13)
    np.testing.assert_allclose(scores["1.weight"].numpy(), s2, rtol=1e-13)


@pytest.mark.parametrize("density,steps", [(0.2, 10), (0.05, 100), (0.5, 1)])
def test_synflow_iterative_mask_equals_hand_computed_schedule(density: float, steps: int) -> None:
    model = chain((12, 9, 6), seed=4)
    with torch.no_grad():  # two dead hidden units: their inputs score exactly 0 (zero fill)
        model[1].weight[:, :2] = 0
    w1, w2 = (model[i].weight.detach().numpy() for i in (0, 1))
    allocation = methods.get("synflow", steps=steps).allocate(
        model, density, context=methods.AllocationContext(input_shape=(12,))
    )
    assert (flat(allocation.masks) == synflow_oracle(w1, w2, density, steps)).all()
    assert allocation.cost.forward_passes == steps
    if steps == 10:  # 24 + 12 zero scores of 162 > 1 - 0.2**0.1 of them: filled at step 1
        assert allocation.info["zero_score_fill_steps"][:1] == [1]


def test_synflow_scores_equal_closed_form_on_tiny_cnn_with_batchnorm() -> None:
    """Eval-mode BN with |running statistics| and |affine|: every floating entry made absolute."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(27, 4)).double()
    bn = model[1]
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([-1.5, 0.7, 2.0]))
        bn.bias.copy_(torch.tensor([0.3, -0.2, -1.0]))
        bn.running_mean.copy_(torch.tensor([-0.01, 0.02, -0.03]))
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5]))
        model[4].bias.copy_(torch.tensor([-1.0, 2.0, -3.0, 4.0]))
    model.train()  # SynFlow must score in eval mode regardless
    w1, w2 = model[0].weight.detach().abs(), model[4].weight.detach().abs()
    scale = bn.weight.detach().abs() / torch.sqrt(bn.running_var.abs() + bn.eps)
    a = w1.reshape(3, -1).sum(1)  # conv of an all-ones image: the same at all 9 positions
    b = (a - bn.running_mean.abs()) * scale + bn.bias.detach().abs()
    assert (b > 0).all()
    dr_dw2 = b.repeat_interleave(9)[None, :].expand(4, 27)
    dr_dw1 = (w2.sum(0).reshape(3, 9).sum(1) * scale)[:, None, None, None].expand_as(w1)
    scores = synflow_scores(model, layers_of(model), (2, 5, 5))
    torch.testing.assert_close(scores["0.weight"], w1 * dr_dw1, rtol=1e-12, atol=0)
    torch.testing.assert_close(scores["4.weight"], w2 * dr_dw2, rtol=1e-12, atol=0)
    assert model.training and (model[1].weight < 0).any(), "the model itself is untouched"


def test_synflow_float32_overflow_fails_float64_does_not() -> None:
    model = nn.Sequential(*[nn.Linear(16, 16, bias=False) for _ in range(8)])
    with torch.no_grad():
        for layer in model:
            layer.weight.fill_(1e6)  # R = 16**9 * 1e48: finite in float64, inf in float32
    context = methods.AllocationContext(input_shape=(16,))
    with pytest.raises(methods.AllocationFailed, match=r"step 1/100: non-finite"):
        methods.get("synflow", dtype="float32").allocate(model, 0.5, context=context)
    assert methods.get("synflow").allocate(model, 0.5, context=context).kept == 1024


def test_synflow_needs_input_shape() -> None:
    with pytest.raises(ValueError, match="input_shape"):
        methods.get("synflow").allocate(chain(), 0.5)


# ------------------------------------------------------------------------------------------
# GraSP
# ------------------------------------------------------------------------------------------
def test_grasp_equals_finite_difference_hessian_vector_product() -> None:
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    data = batches(2, 7, 5, 3, seed=8)
    weights = [model[0].weight, model[2].weight]

    def loss_grad(ws: list[torch.Tensor]) -> list[torch.Tensor]:
        saved = [w.detach().clone() for w in weights]
        with torch.no_grad():
            for w, new in zip(weights, ws):
                w.copy_(new)
        total = sum(F.cross_entropy(model(x) / 200, y) for x, y in data)
        grads = torch.autograd.grad(total, weights)
        with torch.no_grad():
            for w, old in zip(weights, saved):
                w.copy_(old)
        return [g.detach() for g in grads]

    w0 = [w.detach().clone() for w in weights]
    g = loss_grad(w0)
    eps = 1e-3 / float(torch.sqrt(sum((v * v).sum() for v in g)))
    plus = loss_grad([w + eps * v for w, v in zip(w0, g)])
    minus = loss_grad([w - eps * v for w, v in zip(w0, g)])
    hg = [(p - m) / (2 * eps) for p, m in zip(plus, minus)]

    scoring = ScoringCopy(model, layers_of(model), "cpu")
    scoring.model.eval()
    passes = methods.PassCounter()
    scores = grasp_scores(scoring, data, F.cross_entropy, passes)
    for score, w, h in zip(scores, w0, hg):
        torch.testing.assert_close(score, w * h, rtol=1e-6, atol=1e-14)
    assert (passes.forward, passes.backward) == (4, 6)

    k = 20
    allocation = methods.get("grasp", examples=14, batch_size=7).allocate(
        model, k / 48, context=context_of(data)
    )
    exact = torch.cat([s.reshape(-1) for s in scores]).numpy()
    assert (flat(allocation.masks) == oracle_topk(exact, k)).all()  # the largest, signed
    assert not (exact[flat(allocation.masks)] < 0).all()


# ------------------------------------------------------------------------------------------
# FORCE and Iter-SNIP
# ------------------------------------------------------------------------------------------
def linear_problem(sparse_inputs: bool = False):
    """One Linear(6 -> 4) layer and one batch holding every class; dL/dW is independent of W."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 4))
    g = torch.Generator().manual_seed(9)
    x = torch.randn(12, 6, generator=g)
    if sparse_inputs:
        x[:, 2:] = 0  # only 2 input features: 8 of 24 weights have a gradient
    y = torch.arange(12) % 4
    grad = -(F.one_hot(y, 4).float().T @ x) / 12  # d(-mean target logit)/dW
    return model, [(x, y)], grad


@pytest.mark.parametrize("name", ["force", "itersnip"])
def test_force_on_a_linear_model_is_one_shot_snip_of_the_target_logit(name: str) -> None:
    """For f = Wx + b the gradient never depends on W: every step ranks the same |w0 * g|."""
    model, data, grad = linear_problem()
    k = 7
    allocation = methods.get(name, steps=5).allocate(model, k / 24, context=context_of(data))
    expected = oracle_topk((model[0].weight.detach() * grad).abs().reshape(-1).numpy(), k)
    assert (flat(allocation.masks) == expected).all()
    assert allocation.info["objective"] == "target_logit"
    assert allocation.info["num_batches"] == 1
    assert allocation.info["data"]["batches"] == 5  # fresh batches at each of the 5 steps


def chain_target_logit_grads(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray):
    dz = -np.eye(w2.shape[0])[y] / len(y)
    h = x @ w1.T
    return (dz @ w2).T @ x, dz.T @ h


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_force_and_itersnip_two_steps_by_hand(seed: int) -> None:
    """T = 2 on a linear chain: FORCE rescores every weight at w0*m1, Iter-SNIP only m1."""
    model = chain((8, 6, 4), seed=seed).float()
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 8, generator=g), torch.arange(16) % 4
    data = [(x, y)]
    w1, w2 = (model[i].weight.detach().double().numpy() for i in (0, 1))
    n, density = w1.size + w2.size, 0.1
    k1, k2 = step_counts(density, 2, n)

    def scores(m1: np.ndarray, m2: np.ndarray, at_w0: bool) -> np.ndarray:
        g1, g2 = chain_target_logit_grads(w1 * m1, w2 * m2, x.double().numpy(), y.numpy())
        a1, a2 = (w1, w2) if at_w0 else (w1 * m1, w2 * m2)
        return np.abs(np.concatenate([(a1 * g1).ravel(), (a2 * g2).ravel()]))

    def split(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return mask[: w1.size].reshape(w1.shape), mask[w1.size :].reshape(w2.shape)

    step1 = oracle_topk(scores(np.ones_like(w1), np.ones_like(w2), True), k1)
    force = oracle_topk(scores(*split(step1), True), k2)
    itersnip = oracle_topk(scores(*split(step1), False), k2, step1)
    for name, expected in (("force", force), ("itersnip", itersnip)):
        allocation = methods.get(name, steps=2, fixed_batches=True).allocate(
            model, density, context=context_of(data)
        )
        assert (flat(allocation.masks) == expected).all(), name
    assert (itersnip <= step1).all()


def test_force_revives_pruned_weights_where_itersnip_cannot() -> None:
    revived = 0
    for seed in range(6):
        model = chain((8, 6, 4), seed=seed).float()
        g = torch.Generator().manual_seed(seed)
        context = context_of([(torch.randn(16, 8, generator=g), torch.arange(16) % 4)])
        one_step = methods.get("force", steps=1).allocate(
            model, 0.1**0.5, context=context
        )
        two_steps = methods.get("force", steps=2, fixed_batches=True).allocate(
            model, 0.1, context=context
        )
        revived += int((flat(two_steps.masks) & ~flat(one_step.masks)).sum())
    assert revived > 0


def test_force_restarts_dense_and_itersnip_skips_then_both_recover() -> None:
    """P = 8 positive scores: k_t > 8 at early steps, K = 6 at the end (s.6 failure rule).

    FORCE keeps every weight and restarts from the dense ones; Iter-SNIP, having removed
    nothing yet, removes nothing. Both then prune from step 3 and give one-shot SNIP's answer."""
    model, data, grad = linear_problem(sparse_inputs=True)
    expected = oracle_topk((model[0].weight.detach() * grad).abs().reshape(-1).numpy(), 6)
    for name, key in (("force", "dense_restart_steps"), ("itersnip", "skipped_steps")):
        allocation = methods.get(name, steps=4).allocate(model, 6 / 24, context=context_of(data))
        assert allocation.info[key] == [1, 2], name  # k_t = 17, 12, then 8, 6
        assert (flat(allocation.masks) == expected).all(), name
    for name in ("force", "itersnip"):  # k_4 = 9 > P = 8 at the last step
        with pytest.raises(methods.AllocationFailed, match=r"step 4/4: zero saliency"):
            methods.get(name, steps=4).allocate(model, 9 / 24, context=context_of(data))


def test_force_cross_entropy_objective_is_recorded_and_differs() -> None:
    model = architectures.build("mlp", 10, input_shape=(1, 8, 8))
    ref = methods.get("force", steps=3).allocate(model, 0.1, context=synthetic_context(0))
    ce = methods.get("force", steps=3, objective="cross_entropy").allocate(
        model, 0.1, context=synthetic_context(0)
    )
    assert ce.info["objective"] == "cross_entropy" and ref.info["objective"] == "target_logit"
    assert ce.info["data"] == ref.info["data"], "same batches from the same seed"
    assert not (flat(ce.masks) == flat(ref.masks)).all()


@pytest.mark.parametrize("per_step", [1, 10, 20])  # Table 3: CIFAR-10, CIFAR-100, Tiny ImageNet
def test_force_batches_per_step_come_from_the_data_set(per_step: int) -> None:
    model = architectures.build("mlp", 10, input_shape=(1, 8, 8))
    context = synthetic_context(0, batch_size=16, batches_per_step=per_step)
    allocation = methods.get("force", steps=2).allocate(model, 0.5, context=context)
    assert allocation.info["num_batches"] == per_step
    assert allocation.info["data"]["batches"] == 2 * per_step
    assert allocation.cost.forward_passes == 2 * per_step
    option = methods.get("force", steps=2, num_batches=3).allocate(
        model, 0.5, context=synthetic_context(0, batch_size=16, batches_per_step=per_step)
    )
    assert option.info["num_batches"] == 3  # the option wins over the data set's default


def test_batches_per_step_is_not_looked_up_by_data_set_name() -> None:
    model = architectures.build("mlp", 10, input_shape=(1, 8, 8))
    context = synthetic_context(0, batch_size=16, dataset="cifar100")
    allocation = methods.get("itersnip", steps=2).allocate(model, 0.5, context=context)
    assert allocation.info["num_batches"] == 1
    with pytest.raises(ValueError, match="batches_per_step"):
        methods.AllocationContext(batches_per_step=0)


# ------------------------------------------------------------------------------------------
# Failures
# ------------------------------------------------------------------------------------------
def zero_classifier_cnn() -> nn.Module:
    model = architectures.build("small_cnn", 10, input_shape=(1, 8, 8))
    with torch.no_grad():
        model[-1].weight.zero_()
        model[-1].bias.zero_()
    return model


@pytest.mark.parametrize(
    "name,match",
    [("snip", r"only 0 scores are positive"), ("force", r"step 1/60: all .* zero"),
     ("itersnip", r"step 1/60: zero saliency, only 0"), ("synflow", r"step 1/100: all .* zero")],
)
def test_zero_initialised_classifier_fails_at_step_1(name: str, match: str) -> None:
    """Fixup's case (s.6, D.2): dL/dw = 0 except on the classifier, whose weights are 0."""
    with pytest.raises(methods.AllocationFailed, match=match):
        methods.get(name).allocate(zero_classifier_cnn(), 0.1, context=synthetic_context(0))


@pytest.mark.parametrize("name", ["snip", "grasp", "force", "itersnip", "synflow"])
def test_all_zero_weights_fail(name: str) -> None:
    model = architectures.build("mlp", 10, input_shape=(1, 8, 8))
    with torch.no_grad():
        for layer in architectures.prunable_layers(model):
            layer.weight.zero_()
    with pytest.raises(methods.AllocationFailed):
        methods.get(name).allocate(model, 0.1, context=synthetic_context(0))


def test_data_methods_without_batches_raise_clearly() -> None:
    model = chain()
    for name in ("snip", "grasp", "force", "itersnip"):
        with pytest.raises(ValueError, match="needs data"):
            methods.get(name).allocate(model, 0.5)


# ------------------------------------------------------------------------------------------
# Exact k, determinism, schedules, selection among survivors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["snip", "grasp", "synflow", "force", "itersnip"])
def test_exact_k_and_determinism(name: str) -> None:
    model = architectures.build("small_cnn", 10, input_shape=(1, 8, 8))
    options = {"steps": 7} if name in ("synflow", "force", "itersnip") else {}
    for density in (0.013, 0.21):
        a = methods.get(name, **options).allocate(model, density, context=synthetic_context(3))
        b = methods.get(name, **options).allocate(model, density, context=synthetic_context(3))
        assert a.kept == round(density * 56224)
        assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
        assert a.info.get("data") == b.info.get("data")


@settings(max_examples=200, deadline=None)
@given(density=st.floats(1e-5, 1.0), steps=st.integers(1, 120), total=st.integers(1, 10**7),
       schedule=st.sampled_from(["exp", "linear"]))
def test_step_counts(density: float, steps: int, total: int, schedule: str) -> None:
    counts = step_counts(density, steps, total, schedule)  # type: ignore[arg-type]
    assert len(counts) == steps and counts[-1] == round(density * total)
    assert all(a >= b for a, b in itertools.pairwise(counts)) and counts[0] <= total
    d = density ** (1 / steps) if schedule == "exp" else 1 - (1 - density) / steps
    assert steps == 1 or abs(counts[0] - round(d * total)) <= 1


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_survivors_complement_selection_matches_stable_sort(data: st.DataObject) -> None:
    """Selecting among survivors by dropping the r lowest equals the top k with stable ties."""
    sizes = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=4))
    n = sum(sizes)
    values = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), float)
    grads = np.array(data.draw(st.lists(st.sampled_from([-1.0, 1.0, 2.0]), min_size=n,
                                        max_size=n)))
    weights = [torch.tensor(part) for part in np.split(values, np.cumsum(sizes)[:-1])]
    gradt = [torch.tensor(part) for part in np.split(grads, np.cumsum(sizes)[:-1])]
    survivors = Survivors(weights)
    alive = np.ones(n, dtype=bool)
    for _ in range(3):
        k = data.draw(st.integers(1, int(alive.sum())))
        expected = oracle_topk(np.abs(values * grads), k, alive)
        removed = survivors.keep_top(survivors.gather(weights, [g.clone() for g in gradt]), k)
        for w, index in zip(weights, removed):
            w.view(-1)[index] = 0
        got = np.concatenate([m.reshape(-1).numpy() for m in survivors.masks(weights)])
        assert (got == expected).all()
        alive = expected
        values = values * alive


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**31), sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=4),
       levels=st.sampled_from([2, 5, 50, 10**6]), fraction=st.floats(0, 1))
def test_select_top_equals_stable_sort(seed: int, sizes: list[int], levels: int,
                                       fraction: float) -> None:
    """The pre-filtered selection (both keep and drop modes) against numpy, with many ties."""
    g = torch.Generator().manual_seed(seed)
    parts = [torch.randint(0, levels, (n,), generator=g).double() for n in sizes]
    total = sum(sizes)
    if total == 0:
        return
    k = max(1, min(total, round(fraction * total)))
    got = np.concatenate([m.numpy() for m in select_top(parts, k)])
    assert (got == oracle_topk(torch.cat(parts).numpy(), k)).all()


@pytest.mark.parametrize("k", [1, 700, 150_000, 299_000])
def test_select_top_on_a_strided_sample(k: int) -> None:
    """Above 65536 scores the threshold comes from a strided sample; clumped ties included."""
    g = torch.Generator().manual_seed(k)
    parts = [torch.rand(100_000, generator=g), torch.zeros(50_000),
             torch.randint(0, 3, (150_000,), generator=g).float()]
    got = np.concatenate([m.numpy() for m in select_top(parts, k)])
    assert got.sum() == k
    assert (got == oracle_topk(torch.cat(parts).numpy(), k)).all()


@pytest.mark.parametrize("k", [100_000, 250_000])
@pytest.mark.parametrize("sampled", [1.0, 0.0])
def test_select_top_when_the_sample_misleads(k: int, sampled: float) -> None:
    """The strided sample (every 4th entry here) sees only ``sampled``: the first window holds
    too few (ones sampled) or too many above it (zeros sampled) and must be widened."""
    scores = torch.full((300_000,), 1.0 - sampled)
    scores[::4] = sampled
    got = select_top([scores], k)[0].numpy()
    assert (got == oracle_topk(scores.numpy(), k)).all()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=50), st.data())
def test_global_topk_with_candidates_matches_numpy_stable_argsort(values, data) -> None:
    k = data.draw(st.integers(1, len(values)))
    allowed = np.array(data.draw(st.lists(st.booleans(), min_size=len(values),
                                          max_size=len(values))))
    if allowed.sum() < k:
        allowed[: k] = True
    split = data.draw(st.integers(0, len(values)))
    scores = {"a": torch.tensor(values[:split], dtype=torch.float32),
              "b": torch.tensor(values[split:], dtype=torch.float32)}
    candidates = {"a": torch.tensor(allowed[:split]), "b": torch.tensor(allowed[split:])}
    masks = methods.global_topk(scores, k, candidates=candidates)
    assert (flat(masks) == oracle_topk(np.array(values, float), k, allowed)).all()
