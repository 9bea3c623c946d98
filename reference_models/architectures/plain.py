"""Plain: a stack of 3×3 conv + ReLU and a PixelShuffle tail, no shortcut.

``y = PS(K_last * x_n)``, ``xᵢ = relu(K_i * xᵢ₋₁)``, ``x₀ = relu(K_first * I)``; all convs have
``num_feat`` channels. It is the baseline of the same cost as the merged ETDS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reference_models.architectures.base import ReferenceModel, check_positive, register_arch
from reference_models.architectures.state_dict import (
    StateDict,
    count,
    exact_scale,
    rule_of,
    shape,
    single_stream_kind,
    stack_hparams,
)


@register_arch
class Plain(ReferenceModel):
    """The plain baseline (``num_block`` hidden 3×3 convs of ``num_feat`` channels)."""

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        return rule_of(single_stream_kind(state_dict), cls)

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        sd = state_dict
        colors, width = shape(sd, "conv_first.weight")[1], shape(sd, "conv_first.weight")[0]
        scale = exact_scale(shape(sd, "conv_last.weight")[0], colors, "conv_last")
        return stack_hparams(colors, scale, count(sd, "backbone_convs.{}.weight"), width)

    def __init__(
        self, num_in_ch: int, num_out_ch: int, upscale: int, num_block: int, num_feat: int
    ) -> None:
        super().__init__()
        check_positive(
            num_in_ch=num_in_ch, num_out_ch=num_out_ch, upscale=upscale, num_feat=num_feat
        )
        if num_block < 0:
            raise ValueError(f"{num_block=} must be >= 0")
        self._record_stack(num_in_ch, num_out_ch, upscale, num_block, num_feat)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, kernel_size=3, padding=1)
        self.backbone_convs = nn.ModuleList(
            nn.Conv2d(num_feat, num_feat, kernel_size=3, padding=1) for _ in range(num_block)
        )
        self.conv_last = nn.Conv2d(num_feat, num_out_ch * upscale**2, kernel_size=3, padding=1)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv_first(input))
        for conv in self.backbone_convs:
            x = F.relu(conv(x))
        return self.upsampler(self.conv_last(x))
