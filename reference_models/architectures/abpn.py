"""ABPN (anchor-based plain net, Du et al. 2021) and the authors' ET form of it.

:class:`ABPN`::

    y = PS( K_t2 * relu(K_t1 * h) + repeat_interleave(I, s²) ),
    h = relu(K_num_block * … relu(K_0 * I))       (num_feat channels)

:class:`ABPN_ET` carries the input through the network in extra channels instead of the
shortcut (E3/E4), then clips with ReLU (E2)::

    y = PS( relu(K_clip * relu(K_t2' * relu(K_t1' * h')))[:, :c·s²] )

Widths: hidden ``num_feat + num_extra`` (default ``c + 1``: one zero padding channel then the
colours); first tail conv ``tail_feat`` (the authors': ``c·s² + c`` at ×3, ``c·s² + c + 1``
otherwise); the last two ``c·s²`` plus the authors' dummy at ×3 (``align=None``) or rounded
up to a multiple of ``align``.
"""

from __future__ import annotations

import torch
from torch import nn

from reference_models.architectures.base import (
    ReferenceModel,
    aligned_outputs,
    check_positive,
    register_arch,
)


def _conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)


def _check(num_feat: int, num_block: int, scale: int, num_in_ch: int) -> None:
    check_positive(num_feat=num_feat, scale=scale, num_in_ch=num_in_ch)
    if num_block < 0:
        raise ValueError(f"{num_block=} must be >= 0")


@register_arch
class ABPN(ReferenceModel):
    """ABPN with ``num_block`` hidden 3×3 convs of ``num_feat`` channels and an anchor shortcut."""

    def __init__(self, num_feat: int, num_block: int, scale: int, num_in_ch: int = 3) -> None:
        super().__init__()
        _check(num_feat, num_block, scale, num_in_ch)
        self._record(
            {"num_feat": num_feat, "num_block": num_block, "scale": scale, "num_in_ch": num_in_ch},
            upscale=scale,
            colors=num_in_ch,
        )
        self.scale = scale
        out = num_in_ch * scale**2
        self.backbone = nn.Sequential(
            _conv3x3(num_in_ch, num_feat),
            nn.ReLU(),
            *[nn.Sequential(_conv3x3(num_feat, num_feat), nn.ReLU()) for _ in range(num_block)],
            _conv3x3(num_feat, out),
            nn.ReLU(),
            _conv3x3(out, out),
        )
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        shortcut = torch.repeat_interleave(input, self.scale**2, dim=1)
        return self.upsampler(self.backbone(input) + shortcut)


@register_arch
class ABPN_ET(ReferenceModel):
    """The authors' ET form of ABPN (no shortcut; extra channels carry the input)."""

    #: the clip tail (E2) keeps every output in [0, 1]; et.testing compares the original clamped
    output_clamp = (0.0, 1.0)

    def __init__(
        self,
        num_feat: int,
        num_block: int,
        scale: int,
        num_in_ch: int = 3,
        num_extra: int | None = None,
        tail_feat: int | None = None,
        align: int | None = None,
    ) -> None:
        super().__init__()
        _check(num_feat, num_block, scale, num_in_ch)
        self._record(
            {
                "num_feat": num_feat,
                "num_block": num_block,
                "scale": scale,
                "num_in_ch": num_in_ch,
                "num_extra": num_extra,
                "tail_feat": tail_feat,
                "align": align,
            },
            upscale=scale,
            colors=num_in_ch,
        )
        self.scale = scale
        self.out_channels = num_in_ch * scale**2
        width = num_feat + (num_in_ch + 1 if num_extra is None else num_extra)
        if tail_feat is None:
            tail_feat = self.out_channels + num_in_ch + (0 if scale == 3 else 1)
        last = aligned_outputs(num_in_ch, scale, align)
        self.backbone = nn.Sequential(
            _conv3x3(num_in_ch, width),
            nn.ReLU(),
            *[nn.Sequential(_conv3x3(width, width), nn.ReLU()) for _ in range(num_block)],
            _conv3x3(width, tail_feat),
            nn.ReLU(),
            _conv3x3(tail_feat, last),
            nn.ReLU(),
            nn.Conv2d(last, last, kernel_size=1),
            nn.ReLU(),
        )
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.upsampler(self.backbone(input)[:, : self.out_channels])
