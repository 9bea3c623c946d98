"""R13: fold a per-channel scale that follows a convolution into the convolution.

Theorem. Let ``y = conv(x; W, b, s, p, d, g)`` and ``z_o = γ_o · y_o``. Then

    W'[o] = γ_o · W[o],    b'_o = γ_o · b_o,

gives ``conv(x; W', b', s, p, d, g) = z`` for every x and any geometry, because output channel
o of a convolution is ``b_o + ⟨W[o], patch⟩``, linear in ``(W[o], b_o)``.
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_like

RULE_ID = "R13"

SCALE_SHAPE = Precondition(
    RULE_ID,
    "scale_shape",
    "scale shape [C] or [1, C, 1, 1] with C = conv.out_channels",
    why="the scale is a tensor, one factor per output channel",
)
PLACEMENT = Precondition(
    RULE_ID,
    "placement",
    "the scale sits between the conv and any nonlinearity",
    why="structural (the caller asserts it by calling): γ·f(y) ≠ f(γ·y) for ReLU and γ < 0",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "the module is a torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
FINITE = Precondition(RULE_ID, "finite", "the scale is finite")


def check_channel_scale(conv: nn.Conv2d, scale: torch.Tensor) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``scale`` folds into ``conv``."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    SCALE_SHAPE.require(isinstance(scale, torch.Tensor), f"got {type(scale).__name__}")
    channels = conv.out_channels
    SCALE_SHAPE.require(
        tuple(scale.shape) in {(channels,), (1, channels, 1, 1)},
        f"scale shape {tuple(scale.shape)}, conv.out_channels={channels}",
    )
    FINITE.require(bool(torch.isfinite(scale).all()), "it holds inf or NaN")


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
            SCALE_SHAPE,
            PLACEMENT,
            TORCH_MODULES,
            FINITE,
        ),
        transform=fold_channel_scale,
        proof="proofs.rules.fold_channel_scale",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
