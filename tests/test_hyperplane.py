"""Hyperplane Projection (Li et al., 2018): exact at theta = 0, the right gradient, unit-norm
columns, the same P from the same seed, checkpoints of theta alone, and a grid through bench."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import architectures
import methods
import storage
from architectures.hyperplane import (
    FastfoodProjection,
    HyperplaneNet,
    default_projection,
    fwht,
    make_projection,
)
from bench.cli import main

PROJECTIONS = ["dense", "sparse", "fastfood"]
X = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _net(projection: str, density: float = 0.01, seed: int = 0, dtype=torch.float32):
    model = architectures.build("mlp", 10, input_shape=(1, 8, 8), seed=0).to(dtype)
    context = methods.AllocationContext(generator=torch.Generator().manual_seed(seed))
    allocation = methods.get("hyperplane", projection=projection).allocate(
        model, density, context=context
    )
    return allocation, allocation.apply(model)


def _matrix(projection: torch.nn.Module, k: int, dtype=torch.float64) -> torch.Tensor:
    """P, column by column (P e_j)."""
    eye = torch.eye(k, dtype=dtype)
    return torch.stack([projection(eye[j]) for j in range(k)], dim=1)


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_theta_zero_is_exactly_the_dense_initial_network(projection: str) -> None:
    dense = architectures.build("mlp", 10, input_shape=(1, 8, 8), seed=0)
    allocation, net = _net(projection)
    assert torch.equal(net(X), dense(X))
    k = round(0.01 * architectures.count_prunable(dense))
    assert allocation.kept == k == allocation.info["k"] == net.theta.numel()
    assert allocation.info["projection"] == projection
    others = sum(p.numel() for n, p in dense.named_parameters() if not n.endswith("weight"))
    assert methods.trainable_parameter_count(net) == k + others


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_theta_gradient_is_p_transpose_times_the_weight_gradient(projection: str) -> None:
    _, net = _net(projection, density=0.0005, dtype=torch.float64)
    with torch.no_grad():
        net.theta.normal_(generator=torch.Generator().manual_seed(2))
    y = torch.arange(6) % 10
    F.cross_entropy(net(X.double()), y).backward()
    # The dense network at the same weights, by autograd on the weights themselves.
    weights = {name: w.detach().clone().requires_grad_() for name, w in net.weights().items()}
    loss = F.cross_entropy(torch.func.functional_call(net.model, weights, (X.double(),)), y)
    grads = torch.autograd.grad(loss, list(weights.values()))
    flat = torch.cat([g.reshape(-1) for g in grads])
    matrix = _matrix(net.projection, net.theta.numel())
    torch.testing.assert_close(net.theta.grad, matrix.T @ flat, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("projection", ["dense", "sparse"])
def test_columns_have_unit_norm(projection: str) -> None:
    matrix = _matrix(make_projection(projection, 5000, 40, torch.Generator().manual_seed(0)), 40,
                     dtype=torch.float32)
    torch.testing.assert_close(matrix.norm(dim=0), torch.ones(40), rtol=1e-5, atol=1e-5)
    if projection == "sparse":  # about sqrt(N) non-zeros per column
        per_column = (matrix != 0).sum(dim=0).float()
        assert per_column.max() <= round(math.sqrt(5000))
        assert per_column.min() >= 0.9 * round(math.sqrt(5000))


def test_fastfood_columns_as_li_et_al_define_them() -> None:
    total, k = 3000, 24
    fastfood = FastfoodProjection(total, k, torch.Generator().manual_seed(0))
    eye = torch.eye(k, dtype=torch.float64)
    divisor = math.sqrt(fastfood.size * float((fastfood.gaussian.double() ** 2).sum()))
    full = torch.stack([fastfood.untruncated(eye[j]) for j in range(k)], dim=1) / divisor
    torch.testing.assert_close(full.norm(dim=0), torch.ones(k, dtype=torch.float64))
    truncated = _matrix(fastfood, k)
    assert truncated.shape == (total, k)
    assert 0.7 < float((truncated.norm(dim=0) ** 2).mean()) < 1.3  # unit norm in expectation
    x = torch.randn(16, dtype=torch.float64)
    hadamard = torch.tensor([[1.0]], dtype=torch.float64)
    for _ in range(4):
        hadamard = torch.cat((torch.cat((hadamard, hadamard), 1),
                              torch.cat((hadamard, -hadamard), 1)))
    torch.testing.assert_close(fwht(x), hadamard @ x)


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_same_seed_same_projection_bit_for_bit(projection: str) -> None:
    first, net1 = _net(projection, density=0.0005, seed=5)
    second, net2 = _net(projection, density=0.0005, seed=5)
    _, net3 = _net(projection, density=0.0005, seed=6)
    k = net1.theta.numel()
    assert first.info["seed"] == second.info["seed"]
    assert torch.equal(_matrix(net1.projection, k, torch.float32),
                       _matrix(net2.projection, k, torch.float32))
    assert not torch.equal(_matrix(net1.projection, k, torch.float32),
                           _matrix(net3.projection, k, torch.float32))


def test_a_checkpoint_holds_theta_and_reproduces_the_outputs() -> None:
    allocation, net = _net("sparse")
    with torch.no_grad():
        net.theta.uniform_(-1, 1, generator=torch.Generator().manual_seed(3))
    state = net.state_dict()
    assert "theta" in state and "w0" not in state
    assert not any(name.endswith("weight") or "projection" in name for name in state)
    rebuilt = allocation.apply(architectures.build("mlp", 10, input_shape=(1, 8, 8), seed=0))
    assert not torch.equal(rebuilt(X), net(X))
    rebuilt.load_state_dict(state)
    assert torch.equal(rebuilt(X), net(X))


def test_default_projection_by_size() -> None:
    assert default_projection(60_000, 60) == "dense"  # LeNet-5 at 0.1%
    assert default_projection(60_000, 300) == "sparse"
    assert default_projection(60_000, 600) == "fastfood"  # LeNet-5 at 1%
    assert default_projection(23_000_000, 230_000) == "fastfood"
    assert isinstance(_net("auto")[1], HyperplaneNet)


def test_hyperplane_grid_stores_rows_like_any_method(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["run", "--methods", "hyperplane", "epl", "--densities", "0.01", "--epochs", "2"]
    args += ["--train-subset", "200", "--db", db_url, "--no-progress"]
    assert main([*args, "--runs-dir", str(tmp_path / "runs")]) == 0
    engine = storage.open_db(db_url)
    runs = storage.runs(engine).set_index("method")
    assert set(runs.index) == {"dense", "epl", "hyperplane"}
    assert runs.loc["hyperplane", "status"] == "finished"
    assert runs.loc["hyperplane", "kept"] == round(0.01 * 84480)
    cost = storage.allocation_cost(engine).set_index("method")
    assert cost.loc["hyperplane", "peak_bytes"] >= 0
    assert storage.epoch_metrics(engine).groupby("method").size()["hyperplane"] == 2


def test_figure_1_is_drawn_for_networks_with_hyperplane_runs(
    db_url: str, tmp_path: Path
) -> None:
    import pandas as pd

    from reports import build_report
    from reports.figure_one import has_subspace_runs, trainable_figure, trainable_points

    args = ["run", "--methods", "hyperplane", "random", "--densities", "0.01", "0.001"]
    args += ["--epochs", "1", "--train-subset", "100", "--db", db_url, "--no-progress"]
    assert main([*args, "--runs-dir", str(tmp_path / "runs")]) == 0
    engine = storage.open_db(db_url)
    runs = storage.runs(engine)
    assert has_subspace_runs(runs)
    points = trainable_points(runs)
    hyper = points[points["method"] == "hyperplane"]["trainable_params"].tolist()
    others = 256 + 256 + 10  # the MLP's biases
    assert sorted(hyper) == [round(0.001 * 84480) + others, round(0.01 * 84480) + others]
    figure = trainable_figure(runs)
    (ax,) = figure.axes
    assert ax.get_xscale() == "log"
    drawn = {artist.get_gid() for artist in ax.get_children() if artist.get_gid()}
    assert {"trainable:hyperplane", "trainable:random", "trainable:dense"} <= drawn
    index = build_report(engine, tmp_path / "report")
    assert "(Figure 1)" in index.read_text()
    assert list((tmp_path / "report").glob("trainable_mlp_digits_*.png"))
    assert not has_subspace_runs(runs[runs["method"] != "hyperplane"].pipe(pd.DataFrame))
