"""Bicubic: the interpolation baseline, ``F.interpolate(I, scale_factor=s, mode="bicubic",
align_corners=False)`` (PyTorch's cubic convolution with a = -0.75, not MATLAB's imresize)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reference_models.architectures.base import ReferenceModel, check_positive, register_arch


@register_arch
class Bicubic(ReferenceModel):
    """Bicubic upsampling by ``upscale``; it has no parameters and accepts any colour count."""

    def __init__(self, upscale: int) -> None:
        super().__init__()
        check_positive(upscale=upscale)
        self._record({"upscale": upscale}, upscale=upscale, colors=3)
        self.upscale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.upscale, mode="bicubic", align_corners=False)
