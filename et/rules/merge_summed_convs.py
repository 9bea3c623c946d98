"""E6: two last convs whose PixelShuffled outputs are summed, as one conv.

Theorem. For convs ``conv_a: n_a → m`` and ``conv_b: n_b → m`` with the same kernel size, stride,
padding, dilation and padding mode (groups 1),

    conv(a; W_a, b_a) + conv(b; W_b, b_b) = conv([a; b]; [W_a, W_b], b_a + b_b)

(convolution is linear and per tap a matrix on the channel axis: ``[W_a, W_b]·[a; b] = W_a a +
W_b b``). PixelShuffle only permutes entries, so it is linear and
``PS(conv_a(a)) + PS(conv_b(b)) = PS(conv([a; b]; [W_a, W_b], b_a + b_b))``; this is the tail of
ETDS, ``PS(conv_last(x)) + PS(conv_residual_last(r))``, with the streams stacked backbone first.
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register
from et.conv_geometry import conv_bias, conv_like
from et.rules import merge_dual_stream as dual_stream

RULE_ID = "E6"

# E5's conditions, stated for this rule (same texts, reported under E6).
SHARED_GEOMETRY = Precondition(RULE_ID, "shared_geometry", str(dual_stream.SHARED_GEOMETRY))
SINGLE_GROUP = Precondition(RULE_ID, "single_group", str(dual_stream.SINGLE_GROUP))
SAME_OUTPUTS = Precondition(RULE_ID, "same_outputs", "the convs have the same number of outputs")
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "both convs are torch Conv2d, each computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def check_summed_convs(conv_a: nn.Conv2d, conv_b: nn.Conv2d) -> None:
    """Refuse convs whose sum is not one conv on the stacked streams."""
    dual_stream.check_dual_stream(
        [conv_a, conv_b],
        torch_modules=TORCH_MODULES,
        single_group=SINGLE_GROUP,
        shared_geometry=SHARED_GEOMETRY,
    )
    SAME_OUTPUTS.require(
        conv_a.out_channels == conv_b.out_channels,
        f"{conv_a.out_channels} != {conv_b.out_channels}",
    )


def merge_summed_convs(conv_a: nn.Conv2d, conv_b: nn.Conv2d) -> nn.Conv2d:
    """One conv on ``[a; b]`` equal to ``conv_a(a) + conv_b(b)``; the arguments are untouched."""
    check_summed_convs(conv_a, conv_b)
    weight = torch.cat([conv_a.weight.detach(), conv_b.weight.detach()], dim=1)
    return conv_like(conv_a, weight, conv_bias(conv_a) + conv_bias(conv_b))


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_summed_convs",
        title="Summed last convs of two streams",
        statement=(
            "PS(conv(a; W_a, b_a)) + PS(conv(b; W_b, b_b)) = "
            "PS(conv([a; b]; [W_a, W_b], b_a + b_b))"
        ),
        preconditions=(
            SHARED_GEOMETRY,
            SINGLE_GROUP,
            SAME_OUTPUTS,
            TORCH_MODULES,
        ),
        transform=merge_summed_convs,
        proof="proofs.rules.merge_summed_convs",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
