"""G13: one conv written with another number of groups.

Theorem. A conv with g₁ groups is the dense conv whose weight ``D[o, c, u, v]`` is its weight
inside the g₁ diagonal blocks (rows ``o`` and columns ``c`` of the same group, block sizes
``out/g₁ × in/g₁``) and 0 elsewhere: output o only reads the channels of its own group. So a
dense weight D that is zero outside g₂ diagonal blocks (g₂ dividing in and out channels) *is*
the g₂-grouped conv with those blocks,

    conv(x; D, groups 1) = conv(x; blocks_{g₂}(D), groups g₂),

for every x, stride, padding, padding mode, dilation and bias (the padding acts on each channel
alone). Going to fewer groups g₂ | g₁ this always holds (every g₁ block lies inside a g₂
block); going to more groups it holds exactly when D is zero outside the g₂ blocks, which is
checked entry by entry.
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
from et.rules.merge_sequential_convs import dense_weight, grouped_weight

RULE_ID = "G13"

DIVIDES = Precondition(
    RULE_ID,
    "divides",
    "the new group count divides conv.in_channels and conv.out_channels",
    why="otherwise no conv has that many groups",
)
BLOCK_DIAGONAL = Precondition(
    RULE_ID,
    "block_diagonal",
    "the dense weight is zero outside the new diagonal blocks (so when g₂ | g₁)",
    why="a weight between two new groups would be dropped",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv is a torch Conv2d computing its torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def outside_blocks(dense: torch.Tensor, groups: int) -> torch.Tensor:
    """Boolean ``[out, in]`` mask of the entries outside ``groups`` diagonal blocks."""
    out_channels, in_channels = dense.shape[:2]
    rows = torch.arange(out_channels) // (out_channels // groups)
    cols = torch.arange(in_channels) // (in_channels // groups)
    return rows[:, None] != cols[None, :]


def regroup_conv(conv: nn.Conv2d, groups: int) -> nn.Conv2d:
    """A new conv with ``groups`` groups computing what ``conv`` computes."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    DIVIDES.require(
        groups >= 1 and conv.in_channels % groups == 0 and conv.out_channels % groups == 0,
        f"{groups} groups for {conv.in_channels} → {conv.out_channels} channels",
    )
    dense = dense_weight(conv.weight.detach(), conv.groups)
    stray = dense[outside_blocks(dense, groups).to(dense.device)]
    BLOCK_DIAGONAL.require(
        not bool(torch.any(stray != 0)),
        f"{int(torch.count_nonzero(stray))} non-zero weights outside the {groups} blocks",
    )
    bias = conv_bias(conv) if conv.bias is not None else None
    return conv_like(conv, grouped_weight(dense, groups), bias, groups=groups)


RULE = register(
    Rule(
        id=RULE_ID,
        name="regroup_conv",
        title="Conv written with another number of groups",
        statement="a conv zero outside g diagonal blocks is the g-grouped conv (so when g | g₁)",
        preconditions=(DIVIDES, BLOCK_DIAGONAL, TORCH_MODULES),
        transform=regroup_conv,
        proof="proofs.rules.regroup_conv",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
