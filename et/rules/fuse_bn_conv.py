"""R2: fold a BatchNorm that precedes a convolution into the convolution.

Theorem. An eval-mode BatchNorm is a per-channel affine map ``BN(x)_c = t_c·x_c + m_c`` with
``t_c = γ_c/√(σ²_c + ε)`` and ``m_c = β_c − μ_c·t_c`` (R1's ``bn_scale_shift``). Let
``y = conv(BN(x); W, b, s, p, d, g)`` and write ``c(o, j) = g(o)·C_in/g + j`` for the input
channel that tap ``W[o, j]`` reads. Then with

    W'[o, j, u, v] = W[o, j, u, v] · t_{c(o,j)},
    b'_o = b_o + Σ_{j,u,v} W[o, j, u, v] · m_{c(o,j)},

``conv(x; W', b', s, p, d, g)`` equals the original at every output pixel whose window lies
inside the image, for any stride, dilation and groups. At a tap on the padded border the
original reads the pad value v, the folded conv reads ``t·0 + m = m`` (its own zero pad, plus
the shift folded into b'). So the fold is exact everywhere iff ``p = 0`` or the original pads
with the BN constant ``v_c = m_c`` (equivalently: BN is applied *after* zero padding,
``conv_valid(BN(pad₀(x)))``, as some exporters do). :class:`BNConstantPadded` is that original
computation; ``border="bn_constant"`` declares it.
"""

from __future__ import annotations

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
from et.rules.fuse_conv_bn import bn_scale_shift, check_fixed_statistics

RULE_ID = "R2"

Border = Literal["zeros", "bn_constant"]
FIXED_STATISTICS = Precondition(
    RULE_ID, "fixed_statistics", "BatchNorm in eval mode with running statistics"
)
CHANNELS = Precondition(RULE_ID, "channels", "bn.num_features == conv.in_channels")
BORDER_CONDITION = Precondition(
    RULE_ID,
    "border",
    "p = 0, or the conv pads with the per-channel BN constant",
    why="with padding_mode 'zeros': p = 0, or the conv pads with the per-channel BN constant "
    "(border='bn_constant'), or that constant is exactly 0 on every channel. The other padding "
    "modes copy BN outputs into the border, and a per-channel affine map commutes with "
    "copying, so the fold is exact with any p; the result keeps the mode",
)
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "the BN output feeds nothing but the conv",
    why="a structural fact the caller asserts by calling",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "bn is a torch BatchNorm2d and conv a Conv2d, each computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
BORDER_DECLARED = Precondition(
    RULE_ID,
    "border_declared",
    "border is 'zeros' or 'bn_constant'",
    why="the caller declares what the original conv pads the BN output with",
)


def check_bn_conv(bn: nn.BatchNorm2d, conv: nn.Conv2d, border: Border = "zeros") -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``bn`` folds into ``conv``.

    ``border`` says what the original conv pads its input (the BN output) with: ``"zeros"``
    (PyTorch's default) or ``"bn_constant"`` (the BN shift ``m``, i.e. BN of a zero pad).
    """
    require_torch_semantics(bn, nn.BatchNorm2d, TORCH_MODULES)
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    check_fixed_statistics(bn, FIXED_STATISTICS)
    CHANNELS.require(
        bn.num_features == conv.in_channels, f"{bn.num_features} != {conv.in_channels}"
    )
    BORDER_DECLARED.require(border in ("zeros", "bn_constant"), f"got {border!r}")
    geometry = geometry_of(conv)
    if geometry.padding_mode == "zeros" and border == "zeros" and geometry.padding != (0, 0):
        _, shift = bn_scale_shift(bn)
        BORDER_CONDITION.require(
            bool(torch.all(shift == 0)),
            f"padding {geometry.padding} with zeros, but the BN constant is "
            f"{shift.tolist()}; pass border='bn_constant' only if the original pads with it",
        )


def _per_tap_input_channel(values: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``values[c(o, j)]`` arranged as ``[out, in/g, 1, 1]`` (the channel tap W[o, j] reads)."""
    groups = conv.groups
    in_per_group = conv.in_channels // groups
    out_per_group = conv.out_channels // groups
    per_group = values.reshape(groups, 1, in_per_group).expand(groups, out_per_group, -1)
    return per_group.reshape(conv.out_channels, in_per_group, 1, 1)


def fuse_bn_conv(bn: nn.BatchNorm2d, conv: nn.Conv2d, *, border: Border = "zeros") -> nn.Conv2d:
    """A new conv equal to ``conv(BN(x))`` (``border`` as in :func:`check_bn_conv`).

    The result pads with zeros; with ``border="bn_constant"`` it equals
    ``BNConstantPadded(bn, conv)``. The inputs are left untouched.
    """
    check_bn_conv(bn, conv, border)
    weight = conv.weight.detach()
    scale, shift = bn_scale_shift(bn)
    scale = _per_tap_input_channel(scale.to(weight.dtype), conv)
    shift = _per_tap_input_channel(shift.to(weight.dtype), conv)
    new_weight = weight * scale
    new_bias = conv_bias(conv) + (weight * shift).sum(dim=(1, 2, 3))
    return conv_like(conv, new_weight, new_bias)


class BNConstantPadded(nn.Module):
    """The computation ``conv(pad(BN(x), m))``: the conv pads BN's output with ``m = BN(0)``.

    Equivalently ``conv_valid(BN(pad₀(x)))``. This is the left-hand side that
    ``fuse_bn_conv(bn, conv, border="bn_constant")`` reproduces exactly.
    """

    def __init__(self, bn: nn.BatchNorm2d, conv: nn.Conv2d) -> None:
        super().__init__()
        self.bn = bn
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = geometry_of(self.conv).padding
        normalised = self.bn(F.pad(x, (pw, pw, ph, ph)))
        return conv_valid(self.conv, normalised)


RULE = register(
    Rule(
        id=RULE_ID,
        name="fuse_bn_conv",
        title="BatchNorm followed by convolution",
        statement="conv(BN(x); W, b) = conv(x; W·t_in, b + Σ W·m_in) with BN(x) = t·x + m",
        preconditions=(
            FIXED_STATISTICS,
            CHANNELS,
            BORDER_CONDITION,
            ISOLATED,
            TORCH_MODULES,
            BORDER_DECLARED,
        ),
        transform=fuse_bn_conv,
        proof="proofs.rules.fuse_bn_conv",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
