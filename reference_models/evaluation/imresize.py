"""MATLAB-compatible bicubic ``imresize`` (the resampler behind every SR benchmark's LR images).

MATLAB's ``imresize(I, scale, 'bicubic')`` resamples each dimension separately with the Keys
cubic kernel (a = -0.5)::

    cubic(x) = 1.5|x|³ - 2.5|x|² + 1              for |x| ≤ 1
             = -0.5|x|³ + 2.5|x|² - 4|x| + 2       for 1 < |x| ≤ 2
             = 0                                   otherwise

For output pixel ``x = 1..out`` (1-based) of a dimension resized by ``s`` the source coordinate
is ``u = x/s + (1 - 1/s)/2``. When downscaling (``s < 1``) the kernel is stretched to act as an
anti-aliasing filter, ``h(t) = s·cubic(s·t)`` with support width ``4/s``; otherwise ``h = cubic``
with width 4. Output ``x`` reads the ``P = ceil(width) + 2`` source pixels
``left + 0..P-1`` with ``left = floor(u - width/2)``, weighted by ``h(u - index)`` and normalised
to sum to 1. Indices outside ``1..in`` are mirrored (symmetric padding: ``0 → 1``, ``-1 → 2``,
``in+1 → in``). The dimension with the smaller scale factor is resized first (the cheaper order
when one dimension shrinks), and the output size of a dimension is ``ceil(s·in)``.

Each dimension is resized by gathering its ``P`` taps and summing them with their weights
(vectorised over the other axes); :func:`resize_matrix` gives the same map as a dense matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["contributions", "cubic", "imresize", "output_size", "resize_matrix"]

#: Support of the unscaled cubic kernel (|x| ≤ 2).
KERNEL_WIDTH = 4.0


def cubic(x: NDArray[np.floating], a: float = -0.5) -> NDArray[np.float64]:
    """The Keys cubic convolution kernel with parameter ``a`` (MATLAB and the paper: -0.5)."""
    t = np.abs(np.asarray(x, dtype=np.float64))
    t2 = t * t
    t3 = t2 * t
    near = (a + 2) * t3 - (a + 3) * t2 + 1
    far = a * t3 - 5 * a * t2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t <= 2, far, 0.0))


def contributions(
    in_length: int, out_length: int, scale: float, *, antialiasing: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Weights and 0-based (mirrored) source indices, both ``out_length × taps``.

    Output ``i`` is ``Σ_k weights[i, k] · signal[indices[i, k]]``. Tap columns whose weights are
    zero for every output are dropped, as MATLAB does.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"{in_length=} and {out_length=} must be positive")
    if not scale > 0:
        raise ValueError(f"{scale=} must be positive")
    stretch = scale if (scale < 1 and antialiasing) else 1.0
    width = KERNEL_WIDTH / stretch
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    positions = left[:, None] + np.arange(taps)  # 1-based source positions
    weights = stretch * cubic(stretch * (u[:, None] - positions))
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric border: position p (1-based) maps to the mirrored 0-based index.
    period = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = period[np.mod(positions.astype(np.intp) - 1, 2 * in_length)]
    used = np.any(weights != 0, axis=0)
    return weights[:, used], indices[:, used]


def resize_matrix(
    in_length: int, out_length: int, scale: float, *, antialiasing: bool = True
) -> NDArray[np.float64]:
    """The ``out_length × in_length`` matrix ``W`` with ``resized = W @ signal`` along one axis
    (mirrored taps that land on the same source pixel add up)."""
    weights, indices = contributions(in_length, out_length, scale, antialiasing=antialiasing)
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_length)[:, None], indices.shape)
    np.add.at(matrix, (rows, indices), weights)
    return matrix


def _resize_along(
    array: NDArray[np.floating],
    axis: int,
    weights: NDArray[np.float64],
    indices: NDArray[np.intp],
) -> NDArray[np.floating]:
    """Gather and sum along ``axis``: ``out[…, i, …] = Σ_k w[i, k] · array[…, idx[i, k], …]``."""
    shape = [1] * array.ndim
    shape[axis] = -1
    w = weights.astype(array.dtype, copy=False)
    out = w[:, 0].reshape(shape) * np.take(array, indices[:, 0], axis=axis)
    for k in range(1, weights.shape[1]):
        out += w[:, k].reshape(shape) * np.take(array, indices[:, k], axis=axis)
    return out


def output_size(size: Sequence[int], scale: Sequence[float]) -> tuple[int, int]:
    """MATLAB's output size for a scale: ``ceil(scale·size)`` per dimension."""
    return (math.ceil(scale[0] * size[0]), math.ceil(scale[1] * size[1]))


def _scales_and_shape(
    size: tuple[int, int],
    scale: float | Sequence[float] | None,
    shape: Sequence[int] | None,
) -> tuple[tuple[float, float], tuple[int, int]]:
    if (scale is None) == (shape is None):
        raise ValueError("give exactly one of scale and output_shape")
    if scale is not None:
        pair = (float(scale), float(scale)) if np.isscalar(scale) else tuple(map(float, scale))
        if len(pair) != 2 or not all(s > 0 and math.isfinite(s) for s in pair):
            raise ValueError(f"{scale=} must be a positive number or a pair of them")
        return (pair[0], pair[1]), output_size(size, pair)
    assert shape is not None
    out = tuple(int(n) for n in shape)
    if len(out) != 2 or min(out) < 1:
        raise ValueError(f"output_shape={tuple(shape)!r} must be two positive sizes")
    return (out[0] / size[0], out[1] / size[1]), (out[0], out[1])


def imresize(
    image: NDArray[np.floating],
    scale: float | Sequence[float] | None = None,
    output_shape: Sequence[int] | None = None,
    *,
    antialiasing: bool = True,
) -> NDArray[np.floating]:
    """Resize an ``H×W`` or ``H×W×C`` float array exactly as MATLAB's bicubic ``imresize``.

    Give either ``scale`` (one factor, or one per dimension; output ``ceil(scale·size)``) or
    ``output_shape`` ``(height, width)`` (the scales are then ``out/in``). The result has the
    input's float dtype and is not clipped (cubic interpolation overshoots at edges).
    """
    array = np.asarray(image)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"image dtype {array.dtype} must be floating (convert 8-bit images first)")
    if array.ndim not in (2, 3) or min(array.shape[:2]) < 1:
        raise ValueError(f"image shape {array.shape} must be H×W or H×W×C with H, W ≥ 1")
    size = (array.shape[0], array.shape[1])
    scales, shape = _scales_and_shape(size, scale, output_shape)
    result = array
    # MATLAB sorts the dimensions by scale (stable): the one shrunk most is resized first.
    for axis in np.argsort(scales, kind="stable"):
        weights, indices = contributions(
            size[axis], shape[axis], scales[axis], antialiasing=antialiasing
        )
        result = _resize_along(result, int(axis), weights, indices)
    return np.ascontiguousarray(result)
