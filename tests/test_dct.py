"""The DCT matrix, the DCTpS offset D and the FFT formulation (methods-reference.md s.7, s.9)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch

from architectures.dct import (
    dct,
    dct_linear,
    dct_linear_transpose,
    dct_matrix,
    dctps_offset,
    idct,
)

C3 = [[0.57735, 0.57735, 0.57735], [0.70711, 0.0, -0.70711], [0.40825, -0.81650, 0.40825]]


def scipy_dct_matrix(q: int) -> np.ndarray:
    """``C_q`` from scipy: column ``i`` is the DCT of the unit vector ``e_i``."""
    return scipy.fft.dct(np.eye(q), type=2, norm="ortho", axis=0)


@pytest.mark.parametrize("q", [1, 2, 3, 7, 8, 9, 64, 144])
def test_matrix_equals_scipy_and_is_orthonormal(q: int) -> None:
    c64 = dct_matrix(q, torch.float64)
    np.testing.assert_allclose(c64.numpy(), scipy_dct_matrix(q), atol=1e-12)
    torch.testing.assert_close(c64 @ c64.T, torch.eye(q, dtype=torch.float64))
    c32 = dct_matrix(q)
    assert c32.dtype == torch.float32
    np.testing.assert_allclose(c32.numpy(), scipy_dct_matrix(q), atol=1e-6)


def test_matrix_applied_is_scipy_dct() -> None:
    x = np.random.default_rng(0).standard_normal((4, 10))
    expected = scipy.fft.dct(x, type=2, norm="ortho")
    got = torch.from_numpy(x) @ dct_matrix(10, torch.float64).T
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def test_golden_c3() -> None:
    np.testing.assert_allclose(dct_matrix(3).numpy(), C3, atol=1e-5)


def test_golden_linear_blocks() -> None:
    c3 = np.array(C3)
    np.testing.assert_allclose(dctps_offset((3, 2)).numpy(), c3[:, :2], atol=1e-5)  # out > in
    np.testing.assert_allclose(dctps_offset((2, 3)).numpy(), c3[:2, :], atol=1e-5)  # out < in
    np.testing.assert_allclose(dctps_offset((3, 3)).numpy(), c3, atol=1e-5)  # square


@pytest.mark.parametrize(("m", "n"), [(7, 3), (3, 7), (5, 5)])
def test_linear_offset_is_padded_or_truncated_dct(m: int, n: int) -> None:
    """``D x`` is the DCT of x zero-padded to m (m > n) or its first m coefficients (m < n)."""
    x = np.random.default_rng(1).standard_normal((6, n))
    q = max(m, n)
    padded = np.pad(x, ((0, 0), (0, q - n)))
    expected = scipy.fft.dct(padded, type=2, norm="ortho")[:, :m]
    got = torch.from_numpy(x) @ dctps_offset((m, n), dtype=torch.float64).T
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def test_golden_conv_entries_reference_order() -> None:
    d = dctps_offset((3, 2, 2, 2))
    assert d.shape == (3, 2, 2, 2)
    assert d[1, 1, 0, 0].item() == pytest.approx(0.415735, abs=1e-6)
    assert d[1, 0, 0, 1].item() == pytest.approx(0.277785, abs=1e-6)
    assert d[2, 1, 1, 1].item() == pytest.approx(0.461940, abs=1e-6)
    assert dctps_offset((3, 2, 2, 2), order="chw")[1, 1, 0, 0].item() == pytest.approx(
        -0.097545, abs=1e-6
    )


@pytest.mark.parametrize(
    "shape", [(4, 3, 3, 3), (16, 2, 3, 3), (5, 7, 1, 1), (7, 5, 1, 1), (2, 3, 2, 3)]
)
def test_conv_offset_is_dct_of_hwc_patches(shape: tuple[int, int, int, int]) -> None:
    """Each filter row applied to a patch flattened (height, width, channel) is the patch's DCT."""
    out, cin, kh, kw = shape
    patch = np.random.default_rng(2).standard_normal((cin, kh, kw))
    flat = patch.transpose(1, 2, 0).reshape(-1)  # input channel fastest
    q = max(out, flat.size)
    expected = scipy.fft.dct(np.pad(flat, (0, q - flat.size)), type=2, norm="ortho")[:out]
    d = dctps_offset(shape, dtype=torch.float64)
    got = (d * torch.from_numpy(patch)).sum(dim=(1, 2, 3))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    chw = dctps_offset(shape, order="chw", dtype=torch.float64)
    block = dct_matrix(q, torch.float64)[:out, : flat.size]
    torch.testing.assert_close(chw.reshape(out, -1), block)
    if kh == kw == 1:
        torch.testing.assert_close(chw, d)


def test_depthwise_offset_uses_the_reference_fixed_matrix() -> None:
    """Depthwise (out, 1, 3, 3): channel o uses row o of C_q, q = max(out, 9), on its own patch."""
    d = dctps_offset((12, 1, 3, 3), groups=12, dtype=torch.float64)
    c = dct_matrix(12, torch.float64)
    torch.testing.assert_close(d.reshape(12, 9), c[:, :9])
    with pytest.raises(ValueError, match="groups"):
        dctps_offset((10, 1, 3, 3), groups=4)


def test_bad_shapes_and_orders() -> None:
    with pytest.raises(ValueError):
        dctps_offset((3, 3, 3))
    with pytest.raises(ValueError, match="order"):
        dctps_offset((3, 2, 2, 2), order="whc")  # type: ignore[arg-type]


@pytest.mark.parametrize("q", [1, 2, 3, 7, 8, 9, 144, 1000])
def test_fast_dct_and_inverse_equal_the_matrix(q: int) -> None:
    x = torch.randn(3, q, dtype=torch.float64, generator=torch.Generator().manual_seed(q))
    c = dct_matrix(q, torch.float64)
    assert (dct(x) - x @ c.T).abs().max() < 1e-12
    assert (idct(x) - x @ c).abs().max() < 1e-12
    torch.testing.assert_close(idct(dct(x)), x)
    x32 = x.float()
    torch.testing.assert_close(dct(x32), x32 @ c.float().T, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("m", "n"), [(9, 4), (4, 9), (6, 6)])
def test_fast_linear_offset_and_its_transpose(m: int, n: int) -> None:
    d = dctps_offset((m, n), dtype=torch.float64)
    x = torch.randn(5, n, dtype=torch.float64)
    g = torch.randn(5, m, dtype=torch.float64)
    torch.testing.assert_close(dct_linear(x, m), x @ d.T)
    torch.testing.assert_close(dct_linear_transpose(g, n), g @ d)


@pytest.mark.parametrize("shape", [(64, 256, 1, 1), (8, 4, 3, 3), (6, 1, 3, 3)])
def test_offset_has_standard_strides(shape: tuple[int, int, int, int]) -> None:
    """A channels-last-looking D (a 1x1 permute) would send convs down a slow copying path."""
    assert dctps_offset(shape).stride() == torch.empty(shape).stride()
