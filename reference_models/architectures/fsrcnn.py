"""FSRCNN (Dong et al. 2016) as trained by the ETDS authors::

    feature 5×5 (colors→d) + PReLU, shrink 1×1 (d→s) + PReLU, m × [3×3 (s→s) + PReLU],
    expand 1×1 (s→d) + PReLU, ConvTranspose2d 9×9 (d→colors, stride=scale, padding 4,
    output_padding scale-1)

so an ``H×W`` input gives exactly ``sH×sW`` (``(H-1)·s - 8 + 9 + s - 1 = sH``).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from reference_models.architectures.base import ReferenceModel, check_positive, register_arch
from reference_models.architectures.state_dict import StateDict, shape


@register_arch
class FSRCNN(ReferenceModel):
    """FSRCNN(d, s, m); defaults are the paper's (56, 12, 4) on RGB."""

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        if {"first_part.0.weight", "last_part.weight"} <= set(state_dict):
            return "first_part/mid_part/last_part"
        return None

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        """``upscale`` is the stride of the transposed conv, which no shape shows: ``None`` here,
        filled in by the loader (given, our metadata, or ``_x<s>`` in the file name)."""
        sd = state_dict
        colors, d = shape(sd, "first_part.0.weight")[1], shape(sd, "first_part.0.weight")[0]
        convs = sum(1 for k in sd if re.fullmatch(r"mid_part\.\d+\.bias", k))
        return {
            "upscale": None,
            "colors": colors,
            "d": d,
            "s": shape(sd, "mid_part.0.weight")[0],
            "m": convs - 2,
        }

    def __init__(self, upscale: int, colors: int = 3, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        check_positive(upscale=upscale, colors=colors, d=d, s=s)
        if m < 0:
            raise ValueError(f"{m=} must be >= 0")
        self._record(
            {"upscale": upscale, "colors": colors, "d": d, "s": s, "m": m},
            upscale=upscale,
            colors=colors,
        )
        self.first_part = nn.Sequential(nn.Conv2d(colors, d, kernel_size=5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, kernel_size=1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, kernel_size=3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, kernel_size=1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(
            d, colors, kernel_size=9, stride=upscale, padding=4, output_padding=upscale - 1
        )
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        # He-normal on the convs, a tiny normal on the deconvolution, zero biases (the paper's)
        for module in [*self.first_part, *self.mid_part]:
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.weight[0, 0].numel()
                nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.last_part.weight, mean=0.0, std=0.001)
        nn.init.zeros_(self.last_part.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.mid_part(self.first_part(x)))
