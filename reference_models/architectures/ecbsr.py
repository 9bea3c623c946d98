"""ECBSR (Zhang et al. 2021): edge-oriented convolution blocks and their deployed forms.

One ECB (training form) sums five branches, then applies the activation::

    y = act( K₃ₓ₃ * x
           + K₃ₓ₃' * pad_b₀(K₁ₓ₁ * x + b₀)                 (conv1x1-conv3x3)
           + Σ_{M ∈ Sobel-x, Sobel-y, Laplacian} (s ⊙ M) *ᵈʷ pad_b(K₁ₓ₁ * x + b) + β )

where ``pad_b`` pads the 1×1 output with its own bias ``b`` (not 0) so that the pair collapses
exactly to one 3×3 conv with zero padding (R7), ``*ᵈʷ`` is a depthwise conv with a fixed mask
``M`` scaled per channel by the learned ``s`` (R12), and ``β`` is a learned per-channel bias.

:class:`ECBSR` stacks ``ECB(c→F), num_block × ECB(F→F), ECB(F→c·s², linear)`` and adds the input
repeated ``s²`` times per colour (plain broadcast add for one colour) before PixelShuffle;
:class:`ECBSRT` is the re-parameterized form (one 3×3 conv per ECB); :class:`ECBSRET` is the
authors' ET form without the shortcut: ``num_feat`` real channels, one always-zero padding
channel, then the ``c`` colour channels (``num_extra = c + 1``), and a 1×1 clip conv with ReLU.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from reference_models.architectures.base import (
    ReferenceModel,
    aligned_outputs,
    check_positive,
    make_activation,
    register_arch,
)
from reference_models.architectures.state_dict import (
    CheckpointError,
    StateDict,
    act_type,
    align_for,
    count,
    exact_scale,
    scale_and_extra,
    shape,
    stack_hparams,
)

#: the fixed 3×3 masks of the ECB edge branches (row index = y, column index = x)
SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
SOBEL_Y = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
SEQ_MASKS = {"conv1x1-sobelx": SOBEL_X, "conv1x1-sobely": SOBEL_Y, "conv1x1-laplacian": LAPLACIAN}
SEQ_TYPES = ("conv1x1-conv3x3", *SEQ_MASKS)


def pad_with_bias(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Pad ``y`` by one pixel on each side with the per-channel value ``bias``.

    The interior is copied bit for bit (the border is written, not added to the interior).
    """
    n, c, h, w = y.shape
    out = bias.view(1, c, 1, 1).expand(n, c, h + 2, w + 2).clone()
    out[:, :, 1:-1, 1:-1] = y
    return out


class SeqConv3x3(nn.Module):
    """A 1×1 conv followed by a 3×3 conv (learned, or a scaled fixed mask), bias-padded."""

    def __init__(
        self, seq_type: str, inp_planes: int, out_planes: int, depth_multiplier: float
    ) -> None:
        super().__init__()
        if seq_type not in SEQ_TYPES:
            raise ValueError(f"{seq_type=} is not one of {SEQ_TYPES}")
        self.type = seq_type
        self.out_planes = out_planes
        if seq_type == "conv1x1-conv3x3":
            self.mid_planes = int(out_planes * depth_multiplier)
            conv0 = nn.Conv2d(inp_planes, self.mid_planes, kernel_size=1)
            conv1 = nn.Conv2d(self.mid_planes, out_planes, kernel_size=3)
            self.k0, self.b0 = conv0.weight, conv0.bias
            self.k1, self.b1 = conv1.weight, conv1.bias
        else:
            conv0 = nn.Conv2d(inp_planes, out_planes, kernel_size=1)
            self.k0, self.b0 = conv0.weight, conv0.bias
            self.scale = nn.Parameter(torch.randn(out_planes, 1, 1, 1) * 1e-3)
            self.bias = nn.Parameter(torch.randn(out_planes) * 1e-3)
            mask = SEQ_MASKS[seq_type].expand(out_planes, 1, 3, 3).clone()
            # a frozen Parameter, as in the authors' code, so it is part of the state dict
            self.mask = nn.Parameter(mask, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = pad_with_bias(F.conv2d(x, self.k0, self.b0), self.b0)
        if self.type == "conv1x1-conv3x3":
            return F.conv2d(y0, self.k1, self.b1)
        return F.conv2d(y0, self.scale * self.mask, self.bias, groups=self.out_planes)


class ECB(nn.Module):
    """Edge-oriented convolution block (training form): five branches summed, then ``act``.

    ``with_idt`` (the original ECBSR option) adds a sixth branch, the input itself, where
    ``inp_planes == out_planes`` (elsewhere it is ignored): ``y = act(Σ branches + x)``. It
    holds no weights, so a state dict does not show it.
    """

    def __init__(
        self,
        inp_planes: int,
        out_planes: int,
        depth_multiplier: float,
        act_type: str = "prelu",
        with_idt: bool = False,
    ) -> None:
        super().__init__()
        self.with_idt = bool(with_idt) and inp_planes == out_planes
        self.conv3x3 = nn.Conv2d(inp_planes, out_planes, kernel_size=3, padding=1)
        self.conv1x1_3x3 = SeqConv3x3("conv1x1-conv3x3", inp_planes, out_planes, depth_multiplier)
        self.conv1x1_sbx = SeqConv3x3("conv1x1-sobelx", inp_planes, out_planes, -1)
        self.conv1x1_sby = SeqConv3x3("conv1x1-sobely", inp_planes, out_planes, -1)
        self.conv1x1_lpl = SeqConv3x3("conv1x1-laplacian", inp_planes, out_planes, -1)
        self.act = make_activation(act_type, out_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (
            self.conv3x3(x)
            + self.conv1x1_3x3(x)
            + self.conv1x1_sbx(x)
            + self.conv1x1_sby(x)
            + self.conv1x1_lpl(x)
        )
        if self.with_idt:
            y = y + x
        return self.act(y)


def _check_ecbsr(num_in_ch: int, num_out_ch: int, upscale: int, num_block: int, num_feat: int):
    check_positive(num_in_ch=num_in_ch, upscale=upscale, num_feat=num_feat)
    if num_block < 0:
        raise ValueError(f"{num_block=} must be >= 0")
    if num_out_ch != num_in_ch:
        raise ValueError(f"{num_out_ch=} must equal {num_in_ch=} (the shortcut adds the input)")


def _conv_act_stack(num_in_ch: int, width: int, num_block: int, act_type: str) -> list[nn.Module]:
    """The deployed ECB stack before the tail: ``1 + num_block`` × (3×3 conv, activation)."""
    return [
        nn.Sequential(nn.Conv2d(in_ch, width, 3, padding=1), make_activation(act_type, width))
        for in_ch in [num_in_ch] + [width] * num_block
    ]


def _shortcut(x: torch.Tensor, y: torch.Tensor, upscale: int) -> torch.Tensor:
    """``y + repeat_interleave(x, s²)``; one colour broadcasts, which is the same thing."""
    if x.shape[1] > 1:
        return y + torch.repeat_interleave(x, upscale**2, dim=1)
    return y + x


def _deployed_stack(sd: StateDict) -> str | None:
    """``ECBSRET`` when a deployed stack (``backbone.i.0``) ends in a 1×1 conv, else ``ECBSRT``."""
    if "backbone.0.0.weight" not in sd:
        return None
    layers = count(sd, "backbone.{}.0.weight")
    return "ECBSRET" if sd[f"backbone.{layers - 1}.0.weight"].shape[-2:] == (1, 1) else "ECBSRT"


@register_arch
class ECBSR(ReferenceModel):
    """ECBSR training form: ``PS(ECB-stack(I) + repeat_interleave(I, s²))``.

    ``with_idt = 1``: every ECB with as many outputs as inputs adds its input (see :class:`ECB`).
    """

    UNSEEN_HPARAMS: ClassVar[dict[str, str]] = {
        "with_idt": "0 or 1: whether each ECB with equal in/out channels adds its input "
        "(an identity branch that stores no weights)"
    }

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        if "backbone.0.conv3x3.weight" in state_dict:
            return "edge-oriented blocks (conv3x3 + sequential branches)"
        return None

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        """``act_type`` is ``prelu`` when the activation has weights, otherwise ``relu``
        (relu/softplus/linear store nothing); ``with_idt`` is not stored (left out)."""
        sd = state_dict
        colors, feat = (
            shape(sd, "backbone.0.conv3x3.weight")[1],
            shape(sd, "backbone.0.conv3x3.weight")[0],
        )
        layers = count(sd, "backbone.{}.conv3x3.weight")
        if layers < 2:
            raise CheckpointError("ECBSR needs at least a first and a last ECB")
        mid = shape(sd, "backbone.0.conv1x1_3x3.k0")[0]
        last = shape(sd, f"backbone.{layers - 1}.conv3x3.weight")[0]
        return stack_hparams(
            colors,
            exact_scale(last, colors, "the last ECB"),
            layers - 2,
            feat,
            act_type=act_type(sd, "backbone.0.act.weight"),
            depth_multiplier=mid / feat,
        )

    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        upscale: int,
        num_block: int,
        num_feat: int,
        act_type: str = "prelu",
        depth_multiplier: float = 2.0,
        with_idt: int = 0,
    ) -> None:
        super().__init__()
        _check_ecbsr(num_in_ch, num_out_ch, upscale, num_block, num_feat)
        if with_idt not in (0, 1):
            raise ValueError(f"with_idt={with_idt!r} must be 0 or 1")
        self._record_stack(
            num_in_ch,
            num_out_ch,
            upscale,
            num_block,
            num_feat,
            act_type=act_type,
            depth_multiplier=depth_multiplier,
            with_idt=int(with_idt),
        )
        self.num_in_ch = num_in_ch
        self.upscale = upscale
        ecb = functools.partial(ECB, depth_multiplier=depth_multiplier, with_idt=bool(with_idt))
        blocks = [ecb(num_in_ch, num_feat, act_type=act_type)]
        blocks += [ecb(num_feat, num_feat, act_type=act_type) for _ in range(num_block)]
        blocks += [ecb(num_feat, num_out_ch * upscale**2, act_type="linear")]
        self.backbone = nn.Sequential(*blocks)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsampler(_shortcut(x, self.backbone(x), self.upscale))


@register_arch
class ECBSRT(ReferenceModel):
    """ECBSR after re-parameterization: one 3×3 conv (+ activation) per ECB, same shortcut."""

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        if _deployed_stack(state_dict) == "ECBSRT":
            return "re-parameterized ECBSR (one 3×3 conv per block)"
        return None

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        sd = state_dict
        colors, feat = shape(sd, "backbone.0.0.weight")[1], shape(sd, "backbone.0.0.weight")[0]
        layers = count(sd, "backbone.{}.0.weight")
        if layers < 2:
            raise CheckpointError("ECBSRT needs at least a first and a last conv")
        last = shape(sd, f"backbone.{layers - 1}.0.weight")[0]
        return stack_hparams(
            colors,
            exact_scale(last, colors, "the last conv"),
            layers - 2,
            feat,
            act_type=act_type(sd, "backbone.0.1.weight"),
        )

    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        upscale: int,
        num_block: int,
        num_feat: int,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        _check_ecbsr(num_in_ch, num_out_ch, upscale, num_block, num_feat)
        self._record_stack(num_in_ch, num_out_ch, upscale, num_block, num_feat, act_type=act_type)
        self.num_in_ch = num_in_ch
        self.upscale = upscale
        layers = _conv_act_stack(num_in_ch, num_feat, num_block, act_type)
        layers += [nn.Sequential(nn.Conv2d(num_feat, num_out_ch * upscale**2, 3, padding=1))]
        self.backbone = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsampler(_shortcut(x, self.backbone(x), self.upscale))


@register_arch
class ECBSRET(ReferenceModel):
    """ECBSR after the equivalent transformation (no shortcut, ReLU + 1×1 clip tail)::

        y = PS( relu(K_clip * relu(K_last * h))[:, :c·s²] ),  h = act-stack(I)

    Hidden width ``num_feat + num_extra`` (default ``num_extra = c + 1``: one zero padding
    channel, then the colours, which the authors chose so RGB gives a multiple of 4). The last
    conv has ``c·s²`` outputs plus the authors' dummy at ×3 (``align=None``) or ``c·s²`` rounded
    up to a multiple of ``align``.
    """

    #: the clip tail (E2) keeps every output in [0, 1]; et.testing compares the original clamped
    output_clamp = (0.0, 1.0)

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        if _deployed_stack(state_dict) == "ECBSRET":
            return "re-parameterized ECBSR ending in a 1×1 clip conv"
        return None

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        sd = state_dict
        colors, width = shape(sd, "backbone.0.0.weight")[1], shape(sd, "backbone.0.0.weight")[0]
        layers = count(sd, "backbone.{}.0.weight")
        if layers < 3:
            raise CheckpointError("ECBSRET needs a first conv, a last conv and a clip conv")
        out = shape(sd, f"backbone.{layers - 2}.0.weight")[0]
        scale, _ = scale_and_extra(out, colors, "the last conv")
        feat = width - (colors + 1)
        if feat < 1:
            raise CheckpointError(
                f"ECBSRET width {width} leaves no real channels for {colors} colours"
            )
        return stack_hparams(
            colors,
            scale,
            layers - 3,
            feat,
            act_type=act_type(sd, "backbone.0.1.weight"),
            num_extra=None,
            align=align_for(out, colors, scale),
        )

    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        upscale: int,
        num_block: int,
        num_feat: int,
        act_type: str = "prelu",
        num_extra: int | None = None,
        align: int | None = None,
    ) -> None:
        super().__init__()
        _check_ecbsr(num_in_ch, num_out_ch, upscale, num_block, num_feat)
        extra = num_in_ch + 1 if num_extra is None else num_extra
        if extra < 0:
            raise ValueError(f"{num_extra=} must be >= 0")
        self._record_stack(
            num_in_ch,
            num_out_ch,
            upscale,
            num_block,
            num_feat,
            act_type=act_type,
            num_extra=num_extra,
            align=align,
        )
        self.upscale = upscale
        self.out_channels = num_out_ch * upscale**2
        width, last = num_feat + extra, aligned_outputs(num_out_ch, upscale, align)
        layers = _conv_act_stack(num_in_ch, width, num_block, act_type)
        layers += [
            nn.Sequential(nn.Conv2d(width, last, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(last, last, 1), nn.ReLU()),
        ]
        self.backbone = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsampler(self.backbone(x)[:, : self.out_channels])
