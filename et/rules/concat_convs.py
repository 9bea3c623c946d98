"""R11: parallel convolutions whose outputs are concatenated along channels are one convolution.

Theorem. Let ``y_k = conv(x; W_k, b_k, s, p, d, g_k)`` for k = 1..n read the same input x with
the same kernel size, stride, padding, dilation and padding mode. Then

    cat(y_1, …, y_n; dim=1) = conv(x; [W_1; …; W_n], [b_1; …; b_n], s, p, d)

(weights and biases stacked along the output-channel axis), because every output channel of a
convolution depends only on its own row of W and its own bias: stacking rows stacks outputs in
the same order. With groups the rows are stacked in their dense form: a grouped conv's outputs
are ordered group by group, and the concatenation interleaves the groups of different branches,
which no single grouped conv produces; the dense (groups = 1) stack is exact for any groups.
When every branch has groups 1 the result is the plain stack. A missing bias counts as zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like, geometry_of
from et.rules.merge_sequential_convs import dense_weight

RULE_ID = "R11"

SAME_INPUT = Precondition(
    RULE_ID,
    "same_input",
    "the same input tensor (same in_channels)",
    why="the same tensor is a structural fact the caller asserts; the channel count is checked",
)
SAME_GEOMETRY = Precondition(
    RULE_ID,
    "same_geometry",
    "the same kernel size, stride, padding, dilation and padding mode",
    why="embed smaller kernels first with R4",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "every branch is a torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
NONEMPTY = Precondition(RULE_ID, "nonempty", "at least one branch")


def check_concat(convs: Sequence[nn.Conv2d]) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless the branches stack exactly."""
    NONEMPTY.require(len(convs) >= 1, "got an empty sequence")
    for conv in convs:
        require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    first = geometry_of(convs[0])
    for index, conv in enumerate(convs[1:], start=1):
        geo = geometry_of(conv)
        for field in (
            "in_channels",
            "kernel_size",
            "stride",
            "dilation",
            "padding",
            "padding_mode",
        ):
            condition = SAME_INPUT if field == "in_channels" else SAME_GEOMETRY
            condition.require(
                getattr(geo, field) == getattr(first, field),
                f"branch {index} has {field}={getattr(geo, field)!r}, "
                f"branch 0 has {getattr(first, field)!r}",
            )


def concat_convs(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """One convolution equal to ``torch.cat([conv(x) for conv in convs], dim=1)``.

    Groups 1 throughout gives the plain stack; any grouped branch makes the result dense.
    The result has a bias iff some branch has one; the inputs are left untouched.
    """
    check_concat(convs)
    dtype = convs[0].weight.dtype
    weight = torch.cat([dense_weight(c.weight.detach(), c.groups).to(dtype) for c in convs], dim=0)
    bias = None
    if any(conv.bias is not None for conv in convs):
        bias = torch.cat([conv_bias(conv).to(dtype) for conv in convs])
    return conv_like(convs[0], weight, bias, groups=1)  # the stacked weight is dense


RULE = register(
    Rule(
        id=RULE_ID,
        name="concat_convs",
        title="Depth concatenation of parallel convolutions",
        statement="cat_k conv(x; W_k, b_k) = conv(x; [W_1; …; W_n], [b_1; …; b_n])",
        preconditions=(
            SAME_INPUT,
            SAME_GEOMETRY,
            TORCH_MODULES,
            NONEMPTY,
        ),
        transform=concat_convs,
        proof="proofs.rules.concat_convs",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
