"""ESPCN (Shi et al. 2016) as trained by the ETDS authors::

    y = sigmoid(PS(K₃ * tanh(K₂ * tanh(K₁ * I))))

with ``K₁`` 5×5 (colors→64), ``K₂`` 3×3 (64→32), ``K₃`` 3×3 (32→colors·s²).
"""

from __future__ import annotations

import torch
from torch import nn

from reference_models.architectures.base import ReferenceModel, check_positive, register_arch
from reference_models.architectures.state_dict import StateDict, exact_scale, shape


@register_arch
class ESPCN(ReferenceModel):
    """ESPCN; ``feat1``/``feat2`` are the hidden widths (the authors' 64 and 32)."""

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        if {"conv1.weight", "conv2.weight", "conv3.weight"} <= set(state_dict):
            return "conv1/conv2/conv3"
        return None

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        sd = state_dict
        colors, feat1 = shape(sd, "conv1.weight")[1], shape(sd, "conv1.weight")[0]
        return {
            "colors": colors,
            "upscale": exact_scale(shape(sd, "conv3.weight")[0], colors, "conv3"),
            "feat1": feat1,
            "feat2": shape(sd, "conv2.weight")[0],
        }

    def __init__(self, colors: int, upscale: int, feat1: int = 64, feat2: int = 32) -> None:
        super().__init__()
        check_positive(colors=colors, upscale=upscale, feat1=feat1, feat2=feat2)
        self._record(
            {"colors": colors, "upscale": upscale, "feat1": feat1, "feat2": feat2},
            upscale=upscale,
            colors=colors,
        )
        self.conv1 = nn.Conv2d(colors, feat1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(feat1, feat2, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(feat2, colors * upscale**2, kernel_size=3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv1(x))
        x = torch.tanh(self.conv2(x))
        return torch.sigmoid(self.pixel_shuffle(self.conv3(x)))
