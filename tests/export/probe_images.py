"""The synthetic calibration images of the INT8 tests: one helper, so they cannot drift apart.

Each image is :func:`et.probes.probe_inputs` with one sample and its own seed: the stripes in
a grey-level order drawn by that seed (values 0, 1/6, …, 1, so the copies' range [0, 1] is
reached), different for every seed.
"""

from __future__ import annotations

import torch

from et.testing import probe_inputs


def probe_images(
    count: int = 3, size: int = 12, *, dtype: torch.dtype = torch.float64
) -> list[torch.Tensor]:
    """``count`` single-image batches ``[1, 3, size, size]`` from seeds ``0, …, count − 1``."""
    return [probe_inputs((3, size, size), samples=1, seed=s, dtype=dtype) for s in range(count)]
