"""MATLAB-compatible bicubic imresize: known weights, a slow reference loop, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference_models.evaluation.imresize import imresize, output_size, resize_matrix

# ---------------------------------------------------------------------------------------------
# An independent, deliberately slow reference written from the MATLAB description: one output
# pixel at a time, every source position in the kernel's support, mirrored into 1..n.


def _keys(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def _mirror(position: int, n: int) -> int:
    """1-based symmetric padding: 0 → 1, -1 → 2, n+1 → n, n+2 → n-1 (repeated if needed)."""
    while position < 1 or position > n:
        position = 1 - position if position < 1 else 2 * n + 1 - position
    return position


def _slow_resize_1d(signal: list[float], out_length: int, scale: float, aa: bool) -> list[float]:
    n = len(signal)
    stretch = scale if (scale < 1 and aa) else 1.0
    half_width = 2 / stretch
    out = []
    for x in range(1, out_length + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        total = norm = 0.0
        for j in range(math.floor(u - half_width), math.ceil(u + half_width) + 1):
            w = stretch * _keys(stretch * (u - j))
            total += w * signal[_mirror(j, n) - 1]
            norm += w
        out.append(total / norm)
    return out


def _slow_imresize(
    image: np.ndarray,
    shape: tuple[int, int],
    aa: bool = True,
    scales: tuple[float, float] | None = None,
) -> np.ndarray:
    """Resize to ``shape``; the scales default to out/in (MATLAB's ``output_shape`` form)."""
    if scales is None:
        scales = (shape[0] / image.shape[0], shape[1] / image.shape[1])
    rows = np.array(
        [_slow_resize_1d(list(col), shape[0], scales[0], aa) for col in image.T], dtype=np.float64
    ).T
    return np.array([_slow_resize_1d(list(r), shape[1], scales[1], aa) for r in rows])


# ---------------------------------------------------------------------------------------------
# Known weights, computed by hand from the kernel:
# cubic(0.25) = 0.8671875, cubic(0.75) = 0.2265625, cubic(1.25) = -0.0703125,
# cubic(1.75) = -0.0234375 (they sum to 1 over a unit-spaced set of four taps).

C025, C075, C125, C175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375


def test_downscale_by_two_interior_weights() -> None:
    # ×1/2: output x sits at u = 2x - 1/2 (between two source pixels); the stretched kernel
    # h(t) = cubic(t/2)/2 sees offsets ±0.5, ±1.5, ±2.5, ±3.5.
    matrix = resize_matrix(16, 8, 0.5)
    expected = np.array([C175, C125, C075, C025, C025, C075, C125, C175]) / 2
    for row in range(2, 6):
        assert np.array_equal(matrix[row, 2 * row - 3 : 2 * row + 5], expected)
        assert np.count_nonzero(matrix[row]) == 8


def test_upscale_by_two_interior_weights() -> None:
    # ×2: output x = 2k (1-based) sits at u = k + 1/4: offsets 1.25, 0.25, 0.75, 1.75 from
    # source pixels k-1, k, k+1, k+2.
    matrix = resize_matrix(8, 16, 2.0)
    for k in range(3, 7):
        row = 2 * k - 1  # 0-based row of output 2k
        assert np.array_equal(matrix[row, k - 2 : k + 2], [C125, C025, C075, C175])
        # the odd outputs mirror it: u = k - 1/4
        assert np.array_equal(matrix[row - 1, k - 3 : k + 1], [C175, C075, C025, C125])


def test_border_weights_fold_onto_the_edge() -> None:
    # ×2, first output: u = 0.75, taps at positions -1, 0, 1, 2 (offsets 1.75, 0.75, 0.25,
    # 1.25); positions -1 and 0 mirror to 2 and 1.
    first = resize_matrix(8, 16, 2.0)[0]
    assert first[0] == pytest.approx(C075 + C025, abs=1e-15)
    assert first[1] == pytest.approx(C175 + C125, abs=1e-15)
    assert np.count_nonzero(first) == 2


def test_no_antialiasing_uses_the_plain_kernel() -> None:
    matrix = resize_matrix(16, 8, 0.5, antialiasing=False)
    # u = 2x - 1/2: offsets ±0.5, ±1.5 with cubic(0.5) = 0.5625 and cubic(1.5) = -0.0625.
    # row 3 is x = 4, u = 7.5: 1-based pixels 6..9, 0-based columns 5..8.
    assert np.array_equal(matrix[3, 5:9], [-0.0625, 0.5625, 0.5625, -0.0625])
    assert np.count_nonzero(matrix[3]) == 4


# ---------------------------------------------------------------------------------------------
# Agreement with the slow reference.

sizes = st.integers(1, 14)


@given(
    image=hnp.arrays(
        np.float64,
        st.tuples(sizes, sizes),
        elements=st.floats(-1, 2, allow_nan=False, allow_subnormal=False),
    ),
    out_h=st.integers(1, 20),
    out_w=st.integers(1, 20),
    aa=st.booleans(),
)
def test_matches_slow_reference_for_any_output_shape(
    image: np.ndarray, out_h: int, out_w: int, aa: bool
) -> None:
    got = imresize(image, output_shape=(out_h, out_w), antialiasing=aa)
    expected = _slow_imresize(image, (out_h, out_w), aa)
    assert got.shape == (out_h, out_w)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.37, 1.6])
def test_matches_slow_reference_at_benchmark_scales(scale: float) -> None:
    rng = np.random.default_rng(7)
    image = rng.random((24, 36))
    got = imresize(image, scale)
    shape = (math.ceil(scale * 24), math.ceil(scale * 36))
    # A given scale is used as is (not out/in): 0.37 keeps u = x/0.37 + ... with 9 = ceil(8.88).
    expected = _slow_imresize(image, shape, scales=(scale, scale))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Properties.

images = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 24), st.integers(1, 24), st.integers(1, 3)),
    elements=st.floats(0, 1, allow_nan=False, allow_subnormal=False),
)
scales = st.floats(0.1, 4.0, allow_nan=False)


@given(
    value=st.floats(-3, 3, allow_nan=False),
    shape=st.tuples(st.integers(1, 30), st.integers(1, 30)),
    scale=scales,
)
def test_constant_image_stays_constant(value: float, shape: tuple[int, int], scale: float) -> None:
    out = imresize(np.full(shape, value), scale)
    np.testing.assert_allclose(out, value, rtol=0, atol=1e-12 * (1 + abs(value)))


@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 4)),
    scale=scales | st.tuples(scales, scales),
)
def test_output_size_is_ceil_of_scale_times_size(
    shape: tuple[int, int, int], scale: float | tuple[float, float]
) -> None:
    sy, sx = (scale, scale) if isinstance(scale, float) else scale
    out = imresize(np.zeros(shape), scale)
    assert out.shape == (math.ceil(sy * shape[0]), math.ceil(sx * shape[1]), shape[2])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_benchmark_downscales_divide_mod12_sizes_exactly(scale: int) -> None:
    # ceil(n · (1/s)) must not be pushed up by a floating-point 1/s for any GTmod12 size.
    for n in range(12, 8193, 12):
        assert output_size((n, n + 12), (1 / scale, 1 / scale)) == (n // scale, (n + 12) // scale)


@given(image=images, out=st.tuples(st.integers(1, 30), st.integers(1, 30)))
def test_flips_commute(image: np.ndarray, out: tuple[int, int]) -> None:
    # The centre-aligned mapping and the mirror border are symmetric, so resizing a flipped
    # image is the flipped resize (with output_shape the scale is out/in exactly).
    resized = imresize(image, output_shape=out)
    for axis in (0, 1):
        flipped = imresize(np.flip(image, axis), output_shape=out)
        np.testing.assert_allclose(flipped, np.flip(resized, axis), rtol=0, atol=1e-12)


@given(
    a=st.floats(-2, 2, allow_nan=False),
    b=st.floats(-2, 2, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    scale=scales,
)
def test_linear(a: float, b: float, seed: int, shape: tuple[int, int], scale: float) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.random(shape), rng.random(shape)
    np.testing.assert_allclose(
        imresize(a * x + b * y, scale),
        a * imresize(x, scale) + b * imresize(y, scale),
        rtol=0,
        atol=1e-11,
    )


@given(image=images)
def test_scale_one_is_exact_identity(image: np.ndarray) -> None:
    assert np.array_equal(imresize(image, 1.0), image)
    assert np.array_equal(imresize(image, output_shape=image.shape[:2]), image)


@given(image=images, scale=scales)
def test_channels_are_resized_independently(image: np.ndarray, scale: float) -> None:
    whole = imresize(image, scale)
    for c in range(image.shape[2]):
        np.testing.assert_allclose(whole[..., c], imresize(image[..., c], scale), atol=1e-14)


@given(image=images, scale=scales)
def test_float32_input_stays_float32_and_close(image: np.ndarray, scale: float) -> None:
    got = imresize(image.astype(np.float32), scale)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, imresize(image, scale), rtol=0, atol=1e-5)


def test_antialiasing_suppresses_aliasing() -> None:
    # A Nyquist-rate stripe pattern shrunk by 1/3: without the stretched kernel the stripes
    # alias into a strong pattern; with it the result is nearly flat grey.
    stripes = np.tile([0.0, 1.0], (36, 18))
    with_aa = imresize(stripes, 1 / 3)[:, 2:-2]
    without = imresize(stripes, 1 / 3, antialiasing=False)[:, 2:-2]
    assert np.ptp(with_aa) < 0.1 < np.ptp(without)


# ---------------------------------------------------------------------------------------------
# Refusals.


def test_refuses_integer_images() -> None:
    with pytest.raises(TypeError, match="must be floating"):
        imresize(np.zeros((4, 4), dtype=np.uint8), 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of"),
        ({"scale": 0.5, "output_shape": (2, 2)}, "exactly one of"),
        ({"scale": 0.0}, "positive"),
        ({"scale": -2.0}, "positive"),
        ({"scale": (0.5, 0.5, 0.5)}, "pair"),
        ({"output_shape": (0, 3)}, "positive sizes"),
    ],
)
def test_refuses_bad_sizes(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        imresize(np.zeros((4, 4)), **kwargs)


def test_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match="H×W"):
        imresize(np.zeros((2, 2, 2, 2)), 0.5)
