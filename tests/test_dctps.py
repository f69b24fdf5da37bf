"""DCTpS layers, the model swap, Fixup alphas and the ``dctps`` method (methods-reference s.7)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.func import functional_call

import architectures
import methods
from architectures.dct import dctps_offset
from architectures.dctps import (
    IMPLS,
    DCTpSConv2d,
    DCTpSLayer,
    DCTpSLinear,
    dctps_layers,
    to_dctps,
)
from architectures.dctps_fixup import fixup_alphas
from architectures.dctps_sparse import factored_offset

C3 = torch.tensor(
    [[0.57735, 0.57735, 0.57735], [0.70711, 0.0, -0.70711], [0.40825, -0.81650, 0.40825]]
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_mask(shape: tuple[int, ...], density: float, seed: int = 0) -> torch.Tensor:
    """A mask with exactly ``round(density * numel)`` entries (at least one)."""
    numel = torch.Size(shape).numel()
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[torch.randperm(numel, generator=seeded(seed))[: max(1, round(density * numel))]] = True
    return mask.reshape(shape)


def make_layer(
    base: nn.Module, mask: torch.Tensor, impl: str, alpha: float = 0.7, seed: int = 1
) -> DCTpSLayer:
    """A DCTpS layer with non-zero values, so that S matters in every comparison."""
    kind = DCTpSConv2d if isinstance(base, nn.Conv2d) else DCTpSLinear
    layer = kind(base, mask, impl=impl, alpha=alpha)  # type: ignore[arg-type]
    with torch.no_grad():
        layer.values.copy_(torch.randn(layer.support_size, generator=seeded(seed)))
    return layer


# (name, layer factory, input shape)
Factory = Callable[[], nn.Module]
CASES: list[tuple[str, Factory, tuple[int, ...]]] = [
    ("linear out>in", lambda: nn.Linear(5, 9), (4, 5)),
    ("linear out<in", lambda: nn.Linear(9, 5, bias=False), (4, 9)),
    ("linear square", lambda: nn.Linear(6, 6), (4, 6)),
    ("conv 3x3", lambda: nn.Conv2d(4, 6, 3, padding=1), (2, 4, 7, 7)),
    ("conv 3x3 out>p", lambda: nn.Conv2d(2, 24, 3, padding=1, bias=False), (2, 2, 6, 6)),
    ("conv 3x3 stride 2", lambda: nn.Conv2d(5, 3, 3, stride=2, padding=1), (2, 5, 9, 9)),
    ("conv 3x3 dilation", lambda: nn.Conv2d(3, 4, 3, padding=2, dilation=2), (2, 3, 8, 8)),
    (
        "conv 3x3 reflect",
        lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        (2, 3, 6, 6),
    ),
    ("conv 1x1", lambda: nn.Conv2d(6, 6, 1, bias=False), (2, 6, 5, 5)),
    ("conv 1x1 stride 2 out>in", lambda: nn.Conv2d(4, 8, 1, stride=2), (2, 4, 7, 7)),
    ("conv 2x3 kernel", lambda: nn.Conv2d(3, 5, (2, 3), padding=(1, 0)), (2, 3, 6, 6)),
    ("depthwise", lambda: nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False), (2, 6, 5, 5)),
    ("grouped", lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), (2, 4, 5, 5)),
]
CASE_IDS = [case[0] for case in CASES]


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-5) -> None:
    """Equal to ``rel`` of the largest entry (float32 sums of many terms round differently)."""
    scale = float(expected.abs().max()) or 1.0
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale)


def run(layer: DCTpSLayer, x: torch.Tensor) -> list[torch.Tensor]:
    """Output and the gradients of a fixed random projection of it (input, alpha, values, bias)."""
    x = x.clone().requires_grad_()
    y = layer(x)
    (y * torch.randn(y.shape, generator=seeded(7))).sum().backward()
    grads = [x.grad, layer.alpha.grad, layer.values.grad]
    return [y.detach(), *grads, *([] if layer.bias is None else [layer.bias.grad])]


@pytest.mark.parametrize(("name", "factory", "shape"), CASES, ids=CASE_IDS)
def test_all_impls_agree_in_outputs_and_gradients(
    name: str, factory: Factory, shape: tuple[int, ...]
) -> None:
    base = factory()
    mask = random_mask(tuple(base.weight.shape), 0.3)
    x = torch.randn(shape, generator=seeded(3))
    results = {impl: run(make_layer(base, mask, impl), x) for impl in IMPLS}
    for impl in ("factored", "reference"):
        for got, want in zip(results[impl], results["dense"], strict=True):
            assert_close_rel(got, want)
    # and equal to the plain layer holding W = alpha D + S
    plain = make_layer(base, mask, "dense")
    with torch.no_grad():
        base.weight.copy_(plain.effective_weight())
    assert_close_rel(base(x), results["dense"][0])


@pytest.mark.parametrize(("name", "factory", "shape"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_float64(name: str, factory: Factory, shape: tuple[int, ...], impl: str) -> None:
    base = factory().double()
    layer = make_layer(base, random_mask(tuple(base.weight.shape), 0.3), impl)
    names = ["alpha", "values"] + (["bias"] if layer.bias is not None else [])
    params = tuple(getattr(layer, n).detach().clone().requires_grad_() for n in names)
    tiny = (1, *shape[1:])  # one example keeps the Jacobian small
    x = torch.randn(tiny, dtype=torch.float64, generator=seeded(4), requires_grad=True)

    def fn(x: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        return functional_call(layer, dict(zip(names, tensors)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params), fast_mode=True)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("base", "shape"),
    [(nn.Conv2d(2, 3, 3, padding=1), (1, 2, 4, 4)), (nn.Linear(3, 4), (2, 3))],
    ids=["conv", "linear"],
)
def test_gradcheck_full_jacobian_tiny(base: nn.Module, shape: tuple[int, ...], impl: str) -> None:
    """The full (slow-mode) Jacobian on layers small enough for it."""
    layer = make_layer(base.double(), random_mask(tuple(base.weight.shape), 0.4), impl)
    x = torch.randn(shape, dtype=torch.float64, generator=seeded(8), requires_grad=True)
    params = (
        layer.alpha.detach().clone().requires_grad_(),
        layer.values.detach().clone().requires_grad_(),
    )

    def fn(x: torch.Tensor, alpha: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return functional_call(layer, {"alpha": alpha, "values": values}, (x,))

    assert torch.autograd.gradcheck(fn, (x, *params))


def test_zero_values_give_the_dct_golden_values() -> None:
    linear = DCTpSLinear(nn.Linear(2, 3, bias=False), torch.zeros(3, 2, dtype=torch.bool))
    torch.testing.assert_close(linear.effective_weight(), C3[:, :2], atol=1e-5, rtol=0)
    x = torch.randn(4, 2)
    torch.testing.assert_close(linear(x), x @ C3[:, :2].T, atol=1e-4, rtol=0)
    short = DCTpSLinear(nn.Linear(3, 2), torch.zeros(2, 3, dtype=torch.bool))
    torch.testing.assert_close(short.effective_weight(), C3[:2], atol=1e-5, rtol=0)
    for impl in IMPLS:
        conv = DCTpSConv2d(nn.Conv2d(2, 3, 2), torch.ones(3, 2, 2, 2, dtype=torch.bool), impl=impl)
        weight = conv.effective_weight()
        assert weight[1, 1, 0, 0].item() == pytest.approx(0.415735, abs=1e-6)
        assert weight[1, 0, 0, 1].item() == pytest.approx(0.277785, abs=1e-6)
        assert weight[2, 1, 1, 1].item() == pytest.approx(0.461940, abs=1e-6)


@pytest.mark.parametrize("shape", [(6, 4, 3, 3), (3, 5, 3, 3), (8, 8, 1, 1), (4, 2, 2, 3)])
def test_factored_offset_reproduces_d(shape: tuple[int, int, int, int]) -> None:
    """1x1 mix then depthwise spatial, halves summed, is the conv with D (float64, exact)."""
    mix, spatial = factored_offset(shape, torch.float64)
    x = torch.randn(2, shape[1], 6, 6, dtype=torch.float64)
    expected = nn.functional.conv2d(x, dctps_offset(shape, dtype=torch.float64))
    if spatial is None:
        got = nn.functional.conv2d(x, mix)
    else:
        both = nn.functional.conv2d(nn.functional.conv2d(x, mix), spatial, groups=2 * shape[0])
        got = both[:, : shape[0]] + both[:, shape[0] :]
    torch.testing.assert_close(got, expected)


def test_factored_applies_only_to_groups_one_convs() -> None:
    mask = torch.ones(6, 1, 3, 3, dtype=torch.bool)
    depthwise = DCTpSConv2d(nn.Conv2d(6, 6, 3, groups=6), mask, impl="factored")
    assert not depthwise.uses_factored and hasattr(depthwise, "D")
    conv = DCTpSConv2d(nn.Conv2d(4, 6, 3), random_mask((6, 4, 3, 3), 0.1), impl="factored")
    assert conv.uses_factored and not hasattr(conv, "D")
    assert not DCTpSLinear(nn.Linear(3, 3), torch.ones(3, 3, dtype=torch.bool)).uses_factored


def test_layers_are_not_prunable_and_report_sizes() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 4))
    masks = {"0.weight": random_mask((8, 3, 3, 3), 0.1), "2.weight": random_mask((4, 8), 0.25)}
    to_dctps(model, masks)
    assert architectures.prunable_layers(model) == []
    layers = dctps_layers(model)
    assert [(m.support_size, m.total) for m in layers.values()] == [(22, 216), (8, 32)]
    assert not isinstance(layers["0"], nn.Conv2d | nn.Linear)


@pytest.mark.parametrize("impl", IMPLS)
def test_off_support_stays_alpha_d_under_adam_with_weight_decay(impl: str) -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1)
    mask = random_mask((6, 4, 3, 3), 0.2)
    layer = DCTpSConv2d(conv, mask, impl=impl)
    offset = dctps_offset((6, 4, 3, 3))
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05, weight_decay=0.1)
    x = torch.randn(8, 4, 6, 6, generator=seeded(5))
    target = torch.randn(8, 6, 6, 6, generator=seeded(6))
    for _ in range(20):
        optimizer.zero_grad()
        nn.functional.mse_loss(layer(x), target).backward()
        optimizer.step()
    weight = layer.effective_weight().detach()
    alpha = layer.alpha.detach()
    assert alpha.item() != pytest.approx(1.0, abs=1e-3)
    assert torch.equal(weight[~mask], (alpha * offset)[~mask])
    assert not torch.equal(weight[mask], (alpha * offset)[mask])


def test_optimizer_state_is_order_k() -> None:
    linear = nn.Linear(64, 48)
    mask = random_mask((48, 64), 0.01)
    layer = DCTpSLinear(linear, mask)
    k = layer.support_size
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-3, weight_decay=1e-4)
    layer(torch.randn(3, 64)).sum().backward()
    optimizer.step()
    moments = sum(t.numel() for s in optimizer.state.values() for n, t in s.items() if n != "step")
    assert moments == 2 * (k + 1 + 48)  # values, alpha, bias: not 2 * 48 * 64
    assert sum(p.numel() for p in layer.parameters()) == k + 1 + 48


@pytest.mark.parametrize("impl", IMPLS)
def test_state_dict_holds_no_d_and_round_trips(impl: str) -> None:
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
    layer = make_layer(conv, random_mask((6, 4, 3, 3), 0.1), impl)
    state = layer.state_dict()
    assert set(state) == {"alpha", "values", "indices", "bias"}
    assert state["indices"].dtype == torch.int32
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    x = torch.randn(2, 4, 7, 7)
    for target_impl in IMPLS:  # a checkpoint loads into any impl, whatever support it was built on
        fresh = DCTpSConv2d(conv, random_mask((6, 4, 3, 3), 0.5, seed=9), impl=target_impl)
        buffer.seek(0)
        fresh.load_state_dict(torch.load(buffer))
        assert fresh.support_size == layer.support_size
        assert_close_rel(fresh(x), layer(x).detach())


def test_swap_rejects_unknown_names_and_bad_shapes() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match="not prunable"):
        to_dctps(model, {"1.weight": torch.ones(3, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        to_dctps(model, {"0.weight": torch.ones(4, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="impl"):
        to_dctps(model, {"0.weight": torch.ones(3, 4, dtype=torch.bool)}, impl="fft")  # type: ignore[arg-type]


def _checkpoint_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def test_dctps_resnet50_checkpoint_is_under_one_percent() -> None:
    """ResNet50 (23.5M weights) at density 0.001: k values + int32 indices + alpha per layer."""
    if "resnet50" in architectures.available():
        model = architectures.build("resnet50", 10)
    else:  # stand-in of similar size when the zoo is not there
        model = nn.Sequential(*[nn.Conv2d(512, 512, 3) for _ in range(10)], nn.Linear(512, 10))
    dense = _checkpoint_bytes(model)
    allocation = methods.get("dctps").allocate(model, 0.001)
    allocation.apply(model)
    assert _checkpoint_bytes(model) < 0.01 * dense


def test_method_allocates_exactly_k_and_apply_trains_k_entries() -> None:
    model = architectures.build("small_cnn", 10, input_shape=(1, 8, 8))
    total = architectures.count_prunable(model)
    method = methods.get("dctps", allocation="epf", impl="factored")
    assert method.needs_data is False
    assert method.options() == {"allocation": "epf", "impl": "factored", "fixup_alpha": "reference"}
    allocation = method.allocate(model, 0.01, context=methods.AllocationContext())
    k = round(0.01 * total)
    assert allocation.kept == k
    other = sum(p.numel() for p in model.parameters()) - total
    allocation.apply(model)
    layers = dctps_layers(model)
    assert len(layers) == 4
    assert sum(layer.support_size for layer in layers.values()) == k
    assert all(layer.impl == "factored" for layer in layers.values())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == k + len(layers) + other
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_method_is_seeded_and_default_epl() -> None:
    model = architectures.build("mlp", 10, input_shape=(1, 8, 8))
    method = methods.get("dctps")

    def context() -> methods.AllocationContext:
        return methods.AllocationContext(generator=seeded(3))

    first = method.allocate(model, 0.05, context=context())
    again = method.allocate(model, 0.05, context=context())
    epl = methods.get("epl").allocate(model, 0.05, context=context())
    assert first.info["distribution"] == "epl"
    for name in first.masks:
        assert torch.equal(first.masks[name], again.masks[name])
        assert torch.equal(first.masks[name], epl.masks[name])


@pytest.mark.skipif("fixup_resnet110" not in architectures.available(), reason="no Fixup model")
def test_fixup_alphas_and_method_on_fixup_resnet110() -> None:
    model = architectures.build("fixup_resnet110", 10)
    alphas = fixup_alphas(model)
    values = list(alphas.values())
    assert len(values) == 110 and alphas["conv1.weight"] == 1.0 and alphas["fc.weight"] == 0.0
    assert sum(v == 0.0 for v in values) == 55
    middle = [v for v in values if 0.0 < v < 1.0]
    assert sum(0.4383 <= round(v, 4) <= 0.4386 for v in middle) == 52
    assert sorted(round(v, 4) for v in middle if v < 0.4) == [0.3686, 0.3687]
    norm = fixup_alphas(model, "norm")
    assert all(norm[n] == pytest.approx(alphas[n] ** 2) for n in alphas if 0 < alphas[n] < 1)
    allocation = methods.get("dctps").allocate(model, 0.001)
    allocation.apply(model)
    swapped = dctps_layers(model)
    assert len(swapped) == 110
    got = {f"{n}.weight": m.alpha.item() for n, m in swapped.items()}
    assert got == pytest.approx(alphas)
    assert sum(m.support_size for m in swapped.values()) == allocation.kept
    assert torch.equal(model(torch.randn(2, 3, 32, 32)), torch.zeros(2, 10))  # fc alpha 0, S 0
