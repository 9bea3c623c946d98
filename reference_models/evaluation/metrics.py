"""Image-quality metrics of the SR benchmarks: Y channel, PSNR and SSIM (float64 throughout).

* **Y channel** (ITU-R BT.601, studio swing) of 8-bit ``R, G, B``, without rounding::

      Y = (65.481·R + 128.553·G + 24.966·B) / 255 + 16        (so Y ∈ [16, 235])

* **PSNR** of two images with peak 255: ``20·log10(255 / sqrt(MSE))`` (∞ for identical images).
* **SSIM** (Wang et al. 2004) with an 11×11 Gaussian window ``w`` (σ = 1.5, normalised), on the
  *valid* region (the window always inside the image)::

      μx = w∗x,  σx² = w∗x² - μx²,  σxy = w∗(xy) - μx·μy
      SSIM map = ((2μxμy + C1)(2σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2))
      C1 = (0.01·255)²,  C2 = (0.03·255)²;   SSIM = mean of the map

  The Gaussian window is separable, so ``w∗`` is two 1-D valid correlations.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "crop_border",
    "gaussian_window",
    "psnr",
    "psnr_ssim_y",
    "rgb_to_y",
    "ssim",
]

#: BT.601 luma weights for 8-bit R, G, B (already divided by 255 in :func:`rgb_to_y`).
Y_WEIGHTS = (65.481, 128.553, 24.966)
PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * PEAK) ** 2
SSIM_C2 = (0.03 * PEAK) ** 2


def rgb_to_y(image: ArrayLike) -> NDArray[np.float64]:
    """The BT.601 Y channel (``H×W``, float64, range [16, 235]) of an 8-bit-valued RGB image."""
    rgb = np.asarray(image, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image shape {rgb.shape} must be H×W×3 (RGB)")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (Y_WEIGHTS[0] * r + Y_WEIGHTS[1] * g + Y_WEIGHTS[2] * b) / 255.0 + 16.0


def crop_border(image: NDArray, border: int) -> NDArray:
    """Drop ``border`` pixels from each side of the first two axes (``border = 0`` keeps all)."""
    if border < 0:
        raise ValueError(f"{border=} must be ≥ 0")
    if border == 0:
        return image
    if min(image.shape[:2]) <= 2 * border:
        raise ValueError(f"image {image.shape[:2]} is too small to crop {border} pixels per side")
    return image[border:-border, border:-border, ...]


def psnr(a: ArrayLike, b: ArrayLike, peak: float = PEAK) -> float:
    """``20·log10(peak / sqrt(mean((a - b)²)))`` in dB, in float64; ``inf`` when ``a == b``."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    if mse == 0:
        return math.inf
    return 20.0 * math.log10(peak / math.sqrt(mse))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> NDArray[np.float64]:
    """The normalised 1-D Gaussian ``g[i] ∝ exp(-(i - (size-1)/2)² / (2σ²))``, ``i = 0..size-1``."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(image: NDArray[np.float64], g: NDArray[np.float64]) -> NDArray[np.float64]:
    """Separable valid correlation with ``g ⊗ g``: output ``(H - k + 1) × (W - k + 1)``."""
    rows = sliding_window_view(image, g.size, axis=0) @ g
    return sliding_window_view(rows, g.size, axis=1) @ g


def ssim(a: ArrayLike, b: ArrayLike) -> float:
    """Mean SSIM of two single-channel images (values on the 0-255 scale) over the valid region."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"need two H×W images of equal shape, got {x.shape} and {y.shape}")
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"image {x.shape} is smaller than the {SSIM_WINDOW}×{SSIM_WINDOW} window")
    g = gaussian_window()
    mu_x = _filter_valid(x, g)
    mu_y = _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x**2
    var_y = _filter_valid(y * y, g) - mu_y**2
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    )
    return float(ssim_map.mean())


def psnr_ssim_y(sr: ArrayLike, gt: ArrayLike, crop: int) -> tuple[float, float]:
    """PSNR and SSIM on the Y channel of two 8-bit RGB images after cropping ``crop`` pixels."""
    sr_arr = np.asarray(sr)
    gt_arr = np.asarray(gt)
    if sr_arr.shape != gt_arr.shape:
        raise ValueError(f"SR {sr_arr.shape} and GT {gt_arr.shape} shapes differ")
    y_sr = rgb_to_y(crop_border(sr_arr, crop))
    y_gt = rgb_to_y(crop_border(gt_arr, crop))
    return psnr(y_sr, y_gt), ssim(y_sr, y_gt)
