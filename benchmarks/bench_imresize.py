"""Time MATLAB-compatible ``imresize`` on a 512×512×3 float64 image at ×1/2, ×1/3, ×1/4.

Run with ``pytest benchmarks/bench_imresize.py`` (pytest-benchmark).
"""

from __future__ import annotations

import numpy as np
import pytest

from reference_models.evaluation.imresize import imresize


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).random((512, 512, 3))


@pytest.mark.parametrize("scale", [2, 3, 4], ids=["x1/2", "x1/3", "x1/4"])
def test_imresize_512(benchmark, image: np.ndarray, scale: int) -> None:
    out = benchmark(imresize, image, 1 / scale)
    assert out.shape == (-(-512 // scale), -(-512 // scale), 3)
