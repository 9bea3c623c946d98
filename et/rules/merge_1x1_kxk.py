"""R7: a 1×1 convolution followed by a K×K convolution is one K×K convolution.

Theorem. Let ``z = conv(x; W₁, b₁)`` be a 1×1 conv (stride 1, no padding, g₁ groups; as a dense
matrix ``W₁[m, i]``) and ``y = conv(z̄; W₂, b₂, s, p, d, g₂)`` a K×K conv whose padded input z̄
is filled with ``b₁`` on the border ring ("bias padding", as ECBSR's SeqConv3x3 does: pad with
zeros, then write b₁ into the ring). Every pixel of z̄, border included, is ``b₁ + W₁·x̃`` with
x̃ the zero-padded input, so

    y[o] = b₂[o] + Σ_{m,u,v} W₂[o, m, u, v]·b₁[m] + Σ_{i,u,v} (Σ_m W₂[o, m, u, v]·W₁[m, i])·x̃[i, …]

i.e. ``W[o, i, u, v] = Σ_m W₂[o, m, u, v]·W₁[m, i]`` and ``b = b₂ + Σ_{m,u,v} W₂·b₁``, with the
K×K conv's stride, padding (zeros), dilation. Per tap the channel algebra is a matrix product of
a g₁-block-diagonal and a g₂-block-diagonal matrix, so the result has ``gcd(g₁, g₂)`` groups.

With ordinary zero padding (``border="zeros"``) the border ring of z̄ is 0 instead of b₁; the
merge is then exact only if ``p = 0`` or ``b₁ = 0``. :class:`BiasPaddedSequence` is the
bias-padded original computation.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like, conv_valid, geometry_of
from et.rules.merge_sequential_convs import dense_weight, grouped_weight

RULE_ID = "R7"

Border = Literal["bias", "zeros"]
POINTWISE = Precondition(RULE_ID, "pointwise", "the first conv is 1×1 with stride 1 and padding 0")
LINEAR = Precondition(
    RULE_ID,
    "linear",
    "no nonlinearity between the two convs",
    why="a structural fact the caller asserts by calling",
)
CHANNELS = Precondition(RULE_ID, "channels", "pointwise.out_channels == conv.in_channels")
BORDER_CONDITION = Precondition(
    RULE_ID,
    "border",
    "the K×K is valid (p = 0) or its input border is filled with b₁",
    why="border='bias'; with border='zeros' a padded K×K needs b₁ = 0. This concerns "
    "padding_mode 'zeros' only: reflect/replicate/circular padding copies pixels of z, each of "
    "which is b₁ + W₁·x at the copied position, so the merged conv with the same mode is exact "
    "for any p",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "both modules are torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
BORDER_DECLARED = Precondition(
    RULE_ID,
    "border_declared",
    "border is 'bias' or 'zeros'",
    why="the caller declares what the original K×K pads its input with",
)


def check_1x1_kxk(pointwise: nn.Conv2d, conv: nn.Conv2d, border: Border = "bias") -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``conv ∘ pointwise`` is one conv.

    ``border`` is what the original K×K pads its input with: ``"bias"`` (b₁, the 1×1's bias) or
    ``"zeros"`` (PyTorch's default).
    """
    require_torch_semantics(pointwise, nn.Conv2d, TORCH_MODULES)
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    first, second = geometry_of(pointwise), geometry_of(conv)
    POINTWISE.require(
        first.kernel_size == (1, 1) and first.stride == (1, 1) and first.padding == (0, 0),
        f"kernel {first.kernel_size}, stride {first.stride}, padding {first.padding}",
    )
    CHANNELS.require(
        pointwise.out_channels == conv.in_channels,
        f"{pointwise.out_channels} != {conv.in_channels}",
    )
    BORDER_DECLARED.require(border in ("bias", "zeros"), f"got {border!r}")
    zero_padded = second.padding_mode == "zeros" and second.padding != (0, 0)
    if border == "zeros" and zero_padded and pointwise.bias is not None:
        BORDER_CONDITION.require(
            bool(torch.all(pointwise.bias.detach() == 0)),
            f"the K×K pads {second.padding} with zeros but b₁ ≠ 0; the merged conv would put "
            "W₂·b₁ on the border ring (use border='bias' if the original pads with b₁)",
        )


def merge_1x1_kxk(pointwise: nn.Conv2d, conv: nn.Conv2d, border: Border = "bias") -> nn.Conv2d:
    """One K×K conv equal to ``conv(pointwise(x))`` with the given ``border`` semantics.

    With ``border="bias"`` it equals :class:`BiasPaddedSequence` ``(pointwise, conv)``. The inputs
    are left untouched.
    """
    check_1x1_kxk(pointwise, conv, border)
    first, second = geometry_of(pointwise), geometry_of(conv)
    w1 = dense_weight(pointwise.weight.detach(), first.groups)[:, :, 0, 0]
    w2 = dense_weight(conv.weight.detach(), second.groups).to(w1.dtype)
    merged = torch.einsum("omuv,mi->oiuv", w2, w1)
    bias = None
    if pointwise.bias is not None or conv.bias is not None:
        b1 = conv_bias(pointwise).to(w1.dtype)
        bias = conv_bias(conv).to(w1.dtype) + torch.einsum("omuv,m->o", w2, b1)
    groups = math.gcd(first.groups, second.groups)
    return conv_like(conv, grouped_weight(merged, groups), bias, groups=groups)


class BiasPaddedSequence(nn.Module):
    """``conv(z̄)`` with ``z = pointwise(x)`` and z̄ = z padded by ``conv.padding`` with b₁.

    Pads with zeros, then writes b₁ into the border ring (ECBSR's SeqConv3x3), then runs the
    K×K conv unpadded (the K×K's own ``padding_mode`` is not consulted). This is the original
    computation R7 merges exactly.
    """

    def __init__(self, pointwise: nn.Conv2d, conv: nn.Conv2d) -> None:
        super().__init__()
        self.pointwise = pointwise
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.pointwise(x)
        ph, pw = geometry_of(self.conv).padding
        padded = F.pad(z, (pw, pw, ph, ph), value=0.0)
        if self.pointwise.bias is not None and (ph or pw):
            ring = self.pointwise.bias.reshape(1, -1, 1, 1)
            if ph:
                padded[:, :, :ph, :] = ring
                padded[:, :, -ph:, :] = ring
            if pw:
                padded[:, :, :, :pw] = ring
                padded[:, :, :, -pw:] = ring
        return conv_valid(self.conv, padded)


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_1x1_kxk",
        title="Sequential 1×1 then K×K convolutions",
        statement="conv(conv(x; W₁, b₁); W₂, b₂) = conv(x; W₂ ⊛ W₁, b₂ + Σ W₂·b₁) (bias padding)",
        preconditions=(
            POINTWISE,
            LINEAR,
            CHANNELS,
            BORDER_CONDITION,
            TORCH_MODULES,
            BORDER_DECLARED,
        ),
        transform=merge_1x1_kxk,
        proof="proofs.rules.merge_1x1_kxk",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
