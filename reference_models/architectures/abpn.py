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

from typing import NamedTuple

import torch
from torch import nn

from reference_models.architectures.base import (
    ReferenceModel,
    aligned_outputs,
    check_positive,
    register_arch,
)
from reference_models.architectures.state_dict import (
    CheckpointError,
    StateDict,
    align_for,
    count,
    exact_scale,
    scale_and_extra,
    shape,
)


class BackboneLayout(NamedTuple):
    """Where ABPN's named layers sit in ``backbone`` (an ``nn.Sequential`` with the authors'
    indices, so state-dict keys stay theirs): ``first``, the ``blocks`` (each a
    ``Sequential(conv, ReLU)``), the two tail convs and, in the ET form, the 1×1 ``clip``."""

    first: int
    blocks: tuple[int, ...]
    tail_first: int
    tail_last: int
    clip: int

    @classmethod
    def of(cls, num_block: int) -> BackboneLayout:
        """conv, ReLU, blocks, conv, ReLU, conv[, ReLU, clip, ReLU]."""
        tail = 2 + num_block
        return cls(0, tuple(range(2, tail)), tail, tail + 2, tail + 4)

    @classmethod
    def of_state_dict(cls, sd: StateDict) -> BackboneLayout:
        """The layout whose block count the keys ``backbone.<2+i>.0.weight`` show."""
        return cls.of(count(sd, "backbone.{}.0.weight", start=2))

    def key(self, index: int, *, in_block: bool = False) -> str:
        """The state-dict key of the conv weight at backbone ``index``."""
        return f"backbone.{index}.0.weight" if in_block else f"backbone.{index}.weight"


class _NamedLayers:
    """Named access to the convs of an ABPN backbone (see :class:`BackboneLayout`)."""

    backbone: nn.Sequential
    layout: BackboneLayout

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.backbone[self.layout.first]

    @property
    def block_convs(self) -> list[nn.Conv2d]:
        return [self.backbone[i][0] for i in self.layout.blocks]

    @property
    def tail_convs(self) -> tuple[nn.Conv2d, nn.Conv2d]:
        return self.backbone[self.layout.tail_first], self.backbone[self.layout.tail_last]


def _is_abpn(sd: StateDict) -> bool:
    return "backbone.0.weight" in sd


def _has_clip(sd: StateDict) -> bool:
    layout = BackboneLayout.of_state_dict(sd)
    clip = sd.get(layout.key(layout.clip))
    return clip is not None and tuple(clip.shape[-2:]) == (1, 1)


def _conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)


def _check(num_feat: int, num_block: int, scale: int, num_in_ch: int) -> None:
    check_positive(num_feat=num_feat, scale=scale, num_in_ch=num_in_ch)
    if num_block < 0:
        raise ValueError(f"{num_block=} must be >= 0")


def _authors_tail(colors: int, scale: int) -> int:
    """The authors' first tail width in ABPN_ET: ``c·s² + c``, one dummy more except at ×3."""
    return colors * scale**2 + colors + (0 if scale == 3 else 1)


@register_arch
class ABPN(_NamedLayers, ReferenceModel):
    """ABPN with ``num_block`` hidden 3×3 convs of ``num_feat`` channels and an anchor shortcut."""

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        if _is_abpn(state_dict) and not _has_clip(state_dict):
            return "anchor-based plain net"
        return None

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        sd = state_dict
        colors, feat = shape(sd, "backbone.0.weight")[1], shape(sd, "backbone.0.weight")[0]
        layout = BackboneLayout.of_state_dict(sd)
        out = shape(sd, layout.key(layout.tail_first))[0]
        return {
            "num_feat": feat,
            "num_block": len(layout.blocks),
            "scale": exact_scale(out, colors, "the first tail conv"),
            "num_in_ch": colors,
        }

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
        self.layout = BackboneLayout.of(num_block)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        shortcut = torch.repeat_interleave(input, self.scale**2, dim=1)
        return self.upsampler(self.backbone(input) + shortcut)


@register_arch
class ABPN_ET(_NamedLayers, ReferenceModel):
    """The authors' ET form of ABPN (no shortcut; extra channels carry the input)."""

    #: the clip tail (E2) keeps every output in [0, 1]; et.testing compares the original clamped
    output_clamp = (0.0, 1.0)

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        if _is_abpn(state_dict) and _has_clip(state_dict):
            return "anchor-based plain net ending in a 1×1 clip conv"
        return None

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        sd = state_dict
        colors, width = shape(sd, "backbone.0.weight")[1], shape(sd, "backbone.0.weight")[0]
        layout = BackboneLayout.of_state_dict(sd)
        tail = shape(sd, layout.key(layout.tail_first))[0]
        out = shape(sd, layout.key(layout.tail_last))[0]
        scale, _ = scale_and_extra(out, colors, "the last 3×3 conv")
        feat = width - (colors + 1)
        if feat < 1:
            raise CheckpointError(
                f"ABPN_ET width {width} leaves no real channels for {colors} colours"
            )
        return {
            "num_feat": feat,
            "num_block": len(layout.blocks),
            "scale": scale,
            "num_in_ch": colors,
            "num_extra": None,
            "tail_feat": None if tail == _authors_tail(colors, scale) else tail,
            "align": align_for(out, colors, scale),
        }

    @property
    def clip_conv(self) -> nn.Conv2d:
        return self.backbone[self.layout.clip]

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
            tail_feat = _authors_tail(num_in_ch, scale)
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
        self.layout = BackboneLayout.of(num_block)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.upsampler(self.backbone(input)[:, : self.out_channels])
