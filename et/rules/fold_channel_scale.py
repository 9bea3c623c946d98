"""R13: fold a per-channel scale that follows a convolution into the convolution.

Theorem. Let ``y = conv(x; W, b, s, p, d, g)`` and ``z_o = γ_o · y_o``. Then

    W'[o] = γ_o · W[o],    b'_o = γ_o · b_o,

gives ``conv(x; W', b', s, p, d, g) = z`` for every x and any geometry, because output channel
o of a convolution is ``b_o + ⟨W[o], patch⟩``, linear in ``(W[o], b_o)``.

Preconditions (checked by :func:`check_channel_scale`):

* the module is a ``Conv2d``;
* the scale has shape ``[C]`` or ``[1, C, 1, 1]`` with ``C = conv.out_channels``, and is finite;
* the scale multiplies the conv output directly, before any nonlinearity (structural; the caller
  asserts it by calling): ``γ·f(y) ≠ f(γ·y)`` for ReLU and γ < 0.
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import Rule, register, require
from et.conv_geometry import conv_like

RULE_ID = "R13"


def check_channel_scale(conv: nn.Conv2d, scale: torch.Tensor) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``scale`` folds into ``conv``."""
    require(isinstance(conv, nn.Conv2d), RULE_ID, "the module is a Conv2d", type(conv).__name__)
    require(isinstance(scale, torch.Tensor), RULE_ID, "the scale is a tensor", type(scale).__name__)
    channels = conv.out_channels
    require(
        tuple(scale.shape) in {(channels,), (1, channels, 1, 1)},
        RULE_ID,
        "scale shape [C] or [1, C, 1, 1] with C = conv.out_channels",
        f"scale shape {tuple(scale.shape)}, conv.out_channels={channels}",
    )
    require(
        bool(torch.isfinite(scale).all()),
        RULE_ID,
        "the scale is finite",
        "it holds inf or NaN",
    )


def fold_channel_scale(conv: nn.Conv2d, scale: torch.Tensor) -> nn.Conv2d:
    """A new convolution equal to ``scale · conv(x)`` (per output channel); inputs untouched."""
    check_channel_scale(conv, scale)
    weight = conv.weight.detach()
    gamma = scale.detach().reshape(-1).to(dtype=weight.dtype, device=weight.device)
    bias = None if conv.bias is None else conv.bias.detach() * gamma
    return conv_like(conv, weight * gamma.reshape(-1, 1, 1, 1), bias)


RULE = register(
    Rule(
        id=RULE_ID,
        name="fold_channel_scale",
        title="Per-channel scale after a convolution",
        statement="γ ⊙ conv(x; W, b) = conv(x; γ·W, γ·b)",
        preconditions=(
            "scale shape [C] or [1, C, 1, 1] with C = conv.out_channels",
            "the scale sits between the conv and any nonlinearity",
        ),
        transform=fold_channel_scale,
        proof="proofs.rules.fold_channel_scale",
    )
)
