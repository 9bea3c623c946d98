"""G4: a constant added to a valid conv's input folds into its bias.

Theorem. Let a conv have padding 0 (every tap reads a value of its input) and let ``c`` have
one value per input channel. Output o of ``conv(x + c)`` at any position is

    b_o + Σ_{c',u,v} W[o, c', u, v] (x[…] + c_{c'}) = (b_o + Σ_{c',u,v} W[o, c', u, v] c_{c'})
                                                      + Σ W[o, c', u, v] x[…],

with the sum over the input channels of o's group (groups read ``c`` of their own channels), so

    conv(x + c; W, b, padding 0) = conv(x; W, b + Σ_{c',u,v} W[·, c', u, v]·c_{c'}),

for every x, stride, dilation and groups. With the ATen ops' ``alpha``: ``add(x, c, α)`` shifts
by ``α·c``, ``sub(x, c, α)`` by ``−α·c``, ``add(c, x, α)`` and ``sub(c, x, α)`` scale x by
``±α`` (the kernel is scaled, W' = ±α·W) and shift by c; in general ``conv(a·x + e·c) =
conv(x; a·W, b + e·Σ W·c)``. With padding p > 0 the border taps read 0, not c, so the identity
fails there: such a conv is refused.
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
from et.conv_geometry import conv_bias, conv_like
from et.rules.fold_output_constant import coefficients, per_channel
from et.rules.merge_sequential_convs import dense_weight

RULE_ID = "G4"

OPERATION = Precondition(
    RULE_ID,
    "operation",
    "the op is add or sub (ATen add.Tensor / sub.Tensor, any alpha)",
    why="mul and div scale the input instead (R2's per-channel scale)",
)
PER_CHANNEL = Precondition(
    RULE_ID,
    "per_channel",
    "the constant has one value per input channel (a scalar or a [1, C, 1, 1] tensor)",
    why="only a constant that is the same at every position sums to one bias",
)
VALID = Precondition(
    RULE_ID,
    "valid",
    "the conv has padding 0",
    why="a padded conv reads the zero border, not x + c, so the border outputs miss W·c",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv is a torch Conv2d computing its torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def fold_input_shift(
    conv: nn.Conv2d,
    constant: torch.Tensor | float,
    op: str = "add",
    *,
    input_first: bool = True,
    alpha: float = 1.0,
) -> nn.Conv2d:
    """A new conv ``c`` with ``c(x) = conv(op(x, const, alpha))`` (``input_first``) or
    ``conv(op(const, x, alpha))``; the bias gains ``e·Σ W·const``, the kernel is scaled by a."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    a, e = coefficients(op, input_first, alpha, OPERATION)
    c = per_channel(constant, conv.in_channels, PER_CHANNEL)
    padding = (0, 0) if conv.padding == "valid" else conv.padding
    VALID.require(tuple(padding) == (0, 0), f"padding {conv.padding!r}")
    weight = conv.weight.detach()
    dense = dense_weight(weight.double(), conv.groups)
    shift = torch.einsum("oihw,i->o", dense, c.to(weight.device))
    bias = conv_bias(conv).double() + e * shift
    return conv_like(conv, a * weight, bias.to(weight.dtype), padding=0)


RULE = register(
    Rule(
        id=RULE_ID,
        name="fold_input_shift",
        title="Constant added to a valid conv's input",
        statement="conv(x + c; W, b, padding 0) = conv(x; W, b + Σ W·c) for c constant per "
        "input channel",
        preconditions=(OPERATION, PER_CHANNEL, VALID, TORCH_MODULES),
        transform=fold_input_shift,
        proof="proofs.rules.fold_input_shift",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
