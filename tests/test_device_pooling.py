"""Global average pooling as a mean (issue 14): the same numbers as ``AdaptiveAvgPool2d(1)``, the
same parameters, and no layer left in the zoo without a deterministic CUDA backward."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import architectures
from architectures import build, build_meta, parameter_count
from architectures.layers import GlobalAvgPool

# Every zoo model that pools globally, the input it is checked on, and where its pool lives.
POOLED = {
    "resnet18": ((3, 32, 32), "avgpool"),
    "resnet18_w16": ((1, 28, 28), "avgpool"),
    "resnet50": ((3, 32, 32), "avgpool"),
    "mobilenetv2": ((3, 32, 32), "pool"),
    "fixup_resnet110": ((3, 32, 32), "avgpool"),
    "small_cnn": ((1, 8, 8), "10"),
}
# Layers PyTorch documents as having no deterministic CUDA backward.
NONDETERMINISTIC = (
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool3d,
    nn.MaxPool3d,
    nn.FractionalMaxPool2d,
    nn.FractionalMaxPool3d,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _swapped_back(model: nn.Module, where: str) -> nn.Module:
    """A copy of ``model`` pooling with the layer it had before: ``AdaptiveAvgPool2d(1)``, then
    a flatten (small_cnn's ``Sequential`` still has its own ``Flatten`` after the pool)."""
    old = copy.deepcopy(model)
    assert isinstance(old.get_submodule(where), GlobalAvgPool)
    if isinstance(old, nn.Sequential):
        old[int(where)] = nn.AdaptiveAvgPool2d(1)
    else:
        setattr(old, where, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    return old


@pytest.mark.parametrize(
    "shape", [(2, 3, 4, 4), (5, 512, 4, 4), (3, 64, 7, 7), (2, 16, 1, 1), (1, 8, 16, 9)]
)
def test_mean_equals_adaptive_pool_and_flatten(shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), requires_grad=True)
    ours = GlobalAvgPool()(x)
    theirs = nn.AdaptiveAvgPool2d(1)(x).flatten(1)
    assert ours.shape == theirs.shape == shape[:2]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    upstream = torch.randn(*shape[:2], generator=torch.Generator().manual_seed(2))
    (grad_ours,) = torch.autograd.grad(ours, x, upstream)
    (grad_theirs,) = torch.autograd.grad(theirs, x, upstream)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=0, atol=1e-7)


def test_channels_last_input_gives_the_same_mean() -> None:
    x = torch.randn(4, 32, 8, 8, generator=torch.Generator().manual_seed(3))
    out = GlobalAvgPool()(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, GlobalAvgPool()(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", POOLED)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_model_outputs_unchanged_against_the_old_pool(name: str, mode: str) -> None:
    shape, where = POOLED[name]
    model = build(name, 10, input_shape=shape, seed=0)
    if name == "fixup_resnet110":  # its classifier starts at zero: give the pool something to show
        with torch.no_grad():
            model.fc.weight.normal_(generator=torch.Generator().manual_seed(4))
    old = _swapped_back(model, where)
    model.train(mode == "train")
    old.train(mode == "train")
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        new_out, old_out = model(x), old(x)
    assert new_out.abs().sum() > 0
    torch.testing.assert_close(new_out, old_out, rtol=1e-5, atol=1e-6)
    assert model.state_dict().keys() == old.state_dict().keys()
    assert parameter_count(model) == parameter_count(old)


def test_no_zoo_layer_lacks_a_deterministic_cuda_backward() -> None:
    for name in architectures.available():
        shape = (1, 8, 8) if name in ("mlp", "small_cnn") else (3, 32, 32)
        model = build_meta(name, 10, input_shape=shape)
        offending = [type(m).__name__ for m in model.modules() if isinstance(m, NONDETERMINISTIC)]
        assert not offending, (name, offending)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", POOLED)
def test_backward_runs_in_strict_deterministic_mode_on_cuda(name: str) -> None:
    shape, _ = POOLED[name]
    model = build(name, 10, input_shape=shape, seed=0).cuda()
    x = torch.randn(4, *shape, device="cuda")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        model(x).sum().backward()
    finally:
        torch.use_deterministic_algorithms(previous)
