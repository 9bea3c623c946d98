"""Y channel, PSNR and SSIM: known values, a brute-force SSIM, properties and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_models.evaluation.metrics import crop_border, psnr, psnr_ssim_y, rgb_to_y, ssim

# ---------------------------------------------------------------------------------------------
# Y channel


@pytest.mark.parametrize(
    ("rgb", "y"),
    [
        ((0, 0, 0), 16.0),
        ((255, 255, 255), 235.0),  # 65.481 + 128.553 + 24.966 = 219
        ((255, 0, 0), 16 + 65.481),
        ((0, 255, 0), 16 + 128.553),
        ((0, 0, 255), 16 + 24.966),
        ((10, 20, 30), 16 + (654.81 + 2571.06 + 748.98) / 255),
    ],
)
def test_y_of_known_colours(rgb: tuple[int, int, int], y: float) -> None:
    image = np.array([[rgb]], dtype=np.uint8)
    assert rgb_to_y(image)[0, 0] == pytest.approx(y, abs=1e-12)


def test_y_is_not_rounded() -> None:
    # (1, 0, 0) gives 16.2568…: an implementation that rounds Y to 8 bits would give 16.
    y = rgb_to_y(np.array([[[1, 0, 0]]], dtype=np.uint8))[0, 0]
    assert y == pytest.approx(16 + 65.481 / 255, abs=1e-12)
    assert y.dtype == np.float64


def test_y_refuses_non_rgb() -> None:
    with pytest.raises(ValueError, match="H×W×3"):
        rgb_to_y(np.zeros((4, 4)))


# ---------------------------------------------------------------------------------------------
# PSNR


@given(d=st.integers(1, 60), shape=st.tuples(st.integers(1, 20), st.integers(1, 20)))
def test_psnr_of_a_constant_error(d: int, shape: tuple[int, int]) -> None:
    a = np.full(shape, 100.0)
    assert psnr(a, a + d) == pytest.approx(20 * math.log10(255) - 20 * math.log10(d), abs=1e-9)


def test_psnr_of_a_known_mse() -> None:
    # errors 0, 0, 2, 2 → MSE 2 → 10·log10(255²/2)
    a = np.zeros((2, 2))
    b = np.array([[0.0, 0.0], [2.0, -2.0]])
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 2), abs=1e-12)


def test_psnr_identical_is_infinite() -> None:
    a = np.arange(12.0).reshape(3, 4)
    assert psnr(a, a) == math.inf


def test_psnr_refuses_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((3, 3)), np.zeros((3, 4)))


# ---------------------------------------------------------------------------------------------
# SSIM against a brute-force window loop (2-D Gaussian built directly, no separability).


def _brute_ssim(x: np.ndarray, y: np.ndarray) -> float:
    offsets = np.arange(11) - 5
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (window * px).sum(), (window * py).sum()
            vx = (window * (px - mx) ** 2).sum()
            vy = (window * (py - my) ** 2).sum()
            cxy = (window * (px - mx) * (py - my)).sum()
            values.append(
                ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(values))


@st.composite
def pair_of_images(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two 8-bit-valued images: random, or the second a noisy / shifted copy of the first."""
    shape = (draw(st.integers(11, 18)), draw(st.integers(11, 18)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 256, shape).astype(np.float64)
    kind = draw(st.sampled_from(["independent", "noisy", "shifted"]))
    if kind == "independent":
        y = rng.integers(0, 256, shape).astype(np.float64)
    elif kind == "noisy":
        y = np.clip(x + rng.normal(0, draw(st.floats(0.5, 40)), shape).round(), 0, 255)
    else:
        y = np.clip(x + draw(st.integers(-60, 60)), 0, 255)
    return x, y


@given(images=pair_of_images())
def test_ssim_matches_brute_force(images: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = images
    assert ssim(x, y) == pytest.approx(_brute_ssim(x, y), abs=1e-10)


@given(images=pair_of_images())
def test_ssim_is_symmetric_and_at_most_one(images: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = images
    assert ssim(x, y) == pytest.approx(ssim(y, x), abs=1e-14)
    assert ssim(x, y) <= 1 + 1e-12
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)


@given(a=st.integers(0, 255), b=st.integers(0, 255))
def test_ssim_of_flat_images(a: int, b: int) -> None:
    # σ = 0 on both sides: SSIM = (2ab + C1) / (a² + b² + C1).
    c1 = (0.01 * 255) ** 2
    got = ssim(np.full((13, 17), float(a)), np.full((13, 17), float(b)))
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)


def test_ssim_uses_only_the_valid_region() -> None:
    # Smallest image: exactly one window position, so SSIM is that one window's value.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (11, 11)).astype(float)
    y = rng.integers(0, 256, (11, 11)).astype(float)
    assert ssim(x, y) == pytest.approx(_brute_ssim(x, y), abs=1e-12)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((12, 12)), np.zeros((12, 13)), "equal shape"),
        (np.zeros((12, 12, 3)), np.zeros((12, 12, 3)), "H×W"),
        (np.zeros((10, 20)), np.zeros((10, 20)), "smaller than"),
    ],
)
def test_ssim_refusals(x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ssim(x, y)


# ---------------------------------------------------------------------------------------------
# Crop and the combined Y-channel measurement


def test_crop_border() -> None:
    image = np.arange(7 * 9).reshape(7, 9)
    assert np.array_equal(crop_border(image, 2), image[2:5, 2:7])
    assert crop_border(image, 0) is image
    with pytest.raises(ValueError, match="too small"):
        crop_border(image, 4)
    with pytest.raises(ValueError, match="≥ 0"):
        crop_border(image, -1)


def test_psnr_ssim_y_ignores_the_cropped_border() -> None:
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 256, (30, 32, 3), dtype=np.uint8)
    sr = gt.copy()
    sr[:3] = 255 - sr[:3]  # damage only the top 3 rows
    assert psnr_ssim_y(sr, gt, crop=3) == (math.inf, pytest.approx(1.0, abs=1e-12))
    damaged_psnr, damaged_ssim = psnr_ssim_y(sr, gt, crop=2)
    # (the damaged row sits at the window edge, where the Gaussian weight is ~0.004)
    assert damaged_psnr < 40 and damaged_ssim < 1 - 1e-6


def test_psnr_ssim_y_measures_luma_only() -> None:
    # G + 1 everywhere moves Y by 128.553/255 everywhere: PSNR = 20·log10(255 / (128.553/255)).
    gt = np.full((24, 24, 3), 100, dtype=np.uint8)
    sr = gt.copy()
    sr[..., 1] = 101
    assert psnr_ssim_y(sr, gt, crop=2)[0] == pytest.approx(
        20 * math.log10(255 / (128.553 / 255)), abs=1e-9
    )


def test_psnr_ssim_y_refuses_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_ssim_y(np.zeros((24, 24, 3)), np.zeros((24, 36, 3)), crop=2)
