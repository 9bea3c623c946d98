"""The INT8 fidelity check of the LiteRT export: one PSNR over all the calibration images,
accumulated image by image (so five full frames are never held at once)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reference_models.deploy.litert.export import _fidelity_db


def test_fidelity_is_the_psnr_over_every_pixel_of_every_image() -> None:
    model = nn.Conv2d(3, 3, 3, padding=1).eval()
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 3, 8 + 4 * k, 10, generator=generator) for k in range(3)]
    # a runner off by a different constant on each image (images of different sizes, so a
    # mean of per-image PSNRs or MSEs would differ from the PSNR over all pixels)
    offsets = {id(x): 0.01 * (k + 1) for k, x in enumerate(images)}

    def runner(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x).clamp(0, 1) + offsets[id(x)]

    pixels = [x.numel() for x in images]
    squared = sum(n * offsets[id(x)] ** 2 for n, x in zip(pixels, images, strict=True))
    expected = 10 * math.log10(sum(pixels) / squared)
    assert _fidelity_db(model, runner, images) == pytest.approx(expected, abs=1e-4)
