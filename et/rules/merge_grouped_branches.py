"""R20: summed convolutions with different groups are one convolution of their common grouping.

Theorem. Let branches ``yᵢ = conv(x; Wᵢ, bᵢ, s, pᵢ, d, gᵢ)`` read the same x (same in and out
channels C_in, C_out, stride, dilation, padding mode; kernels that centre into one size with
one padding, as in R3). Write ``Dᵢ`` for the dense ``[C_out, C_in, kh, kw]`` weight of branch i
(its gᵢ blocks on the diagonal, zeros elsewhere: G13). Let g divide C_in and C_out and let every
``Dᵢ`` be zero outside the g diagonal blocks; then

    Σᵢ conv(x; Wᵢ, bᵢ, gᵢ) = conv(x; blocks_g(Σᵢ D'ᵢ), Σᵢ bᵢ, g)

for every x, where ``D'ᵢ`` is ``Dᵢ`` centred in the largest kernel (R4). Proof: each branch is the
g-grouped conv with ``blocks_g(Dᵢ)`` (G13), all branches then share their geometry and R3 sums
them. ``g = gcd(g₁, …, gₙ)`` always qualifies: it divides every gᵢ, so every gᵢ block lies in a
g block. The transform takes the *largest* qualifying g (checked on the weights entry by entry),
so a depthwise branch summed with a dense weight that is zero off the diagonal (an identity or a
BatchNorm written as a conv) stays depthwise: the merged conv is no denser than its branches
need. An average pool is a depthwise conv (R10), a BatchNorm a depthwise 1×1 conv (R6 + R1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register
from et.conv_geometry import conv_bias, conv_like
from et.rules.merge_parallel_convs import (
    ParallelConditions,
    check_parallel_convs,
    merge_parallel_convs,
)
from et.rules.merge_sequential_convs import dense_weight, grouped_weight
from et.rules.regroup_conv import outside_blocks

RULE_ID = "R20"

_WHY_SAME = (
    "a different stride or dilation samples the input on another grid, a different padding "
    "mode reads other border values"
)
SAME_INPUT = Precondition(
    RULE_ID,
    "same_input",
    "the branches read the same input and their outputs are summed",
    why="a structural fact the caller asserts by calling",
)
SAME_IN_CHANNELS = Precondition(RULE_ID, "same_in_channels", "the same in_channels on every branch")
SAME_OUT_CHANNELS = Precondition(
    RULE_ID, "same_out_channels", "the same out_channels on every branch"
)
SAME_STRIDE = Precondition(RULE_ID, "same_stride", "the same stride on every branch", why=_WHY_SAME)
SAME_DILATION = Precondition(
    RULE_ID, "same_dilation", "the same dilation on every branch", why=_WHY_SAME
)
SAME_PADDING_MODE = Precondition(
    RULE_ID, "same_padding_mode", "the same padding_mode on every branch", why=_WHY_SAME
)
EVEN = Precondition(
    RULE_ID,
    "even",
    "K − k is even on each axis",
    why="every kernel centres into the largest one (R4)",
)
ONE_PADDING = Precondition(
    RULE_ID,
    "one_padding",
    "one padding after centring: pᵢ + d(K − kᵢ)/2 equal for all branches",
    why="otherwise the outputs are shifted against each other or differ in size",
)
COMMON_BLOCKS = Precondition(
    RULE_ID,
    "common_blocks",
    "the merged group count g divides the channels and every branch's dense weight is zero "
    "outside the g diagonal blocks (always so for g = gcd of the branches' groups)",
    why="a weight between two of the merged conv's groups would be dropped",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "every branch is a torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
NONEMPTY = Precondition(RULE_ID, "nonempty", "at least one branch")

#: R3's geometry conditions under R20's names; the groups are this rule's to reconcile
R20_CONDITIONS = ParallelConditions(
    nonempty=NONEMPTY,
    torch_modules=TORCH_MODULES,
    same={
        "in_channels": SAME_IN_CHANNELS,
        "out_channels": SAME_OUT_CHANNELS,
        "stride": SAME_STRIDE,
        "dilation": SAME_DILATION,
        "padding_mode": SAME_PADDING_MODE,
    },
    even=EVEN,
    one_padding=ONE_PADDING,
)


def _zero_outside(conv: nn.Conv2d, groups: int) -> bool:
    """Whether ``conv``'s dense weight is exactly zero outside ``groups`` diagonal blocks."""
    if conv.in_channels % groups or conv.out_channels % groups:
        return False
    if conv.groups % groups == 0:
        return True  # every conv.groups block lies inside a groups block
    dense = dense_weight(conv.weight.detach(), conv.groups)
    return not bool(torch.any(dense[outside_blocks(dense, groups).to(dense.device)] != 0))


def common_groups(convs: Sequence[nn.Conv2d]) -> int:
    """The largest g (a multiple of the gcd of the branches' groups, dividing the channels) for
    which every branch's dense weight is zero outside the g diagonal blocks."""
    base = math.gcd(*(c.groups for c in convs))
    channels = math.gcd(convs[0].in_channels, convs[0].out_channels)
    candidates = [g for g in range(channels, base - 1, -1) if channels % g == 0 and g % base == 0]
    return next(g for g in candidates if all(_zero_outside(c, g) for c in convs))


def check_grouped_branches(convs: Sequence[nn.Conv2d], groups: int | None = None) -> int:
    """Raise :class:`~et.contract.PreconditionError` unless ``convs`` sum to one conv with
    ``groups`` groups (None: :func:`common_groups`); return that group count."""
    convs = list(convs)
    check_parallel_convs(convs, R20_CONDITIONS)
    target = common_groups(convs) if groups is None else groups
    stray = [c.groups for c in convs if target < 1 or not _zero_outside(c, target)]
    COMMON_BLOCKS.require(
        not stray,
        f"{target} groups for {convs[0].in_channels} → {convs[0].out_channels} channels; "
        f"branches with groups {stray} have weights outside its blocks",
    )
    return target


def merge_grouped_branches(convs: Sequence[nn.Conv2d], groups: int | None = None) -> nn.Conv2d:
    """One conv equal to ``Σᵢ convs[i](x)``, with ``groups`` groups (None: the most groups
    every branch allows, at least the gcd of theirs); the branches are left untouched."""
    convs = list(convs)
    target = check_grouped_branches(convs, groups)
    regrouped = [
        conv_like(
            conv,
            grouped_weight(dense_weight(conv.weight.detach(), conv.groups), target),
            conv_bias(conv) if conv.bias is not None else None,
            groups=target,
        )
        for conv in convs
    ]
    # the geometry was checked above under R20's names: R3 now only sums the kernels
    return merge_parallel_convs(regrouped)


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_grouped_branches",
        title="Summed convolutions of different groups",
        statement=(
            "Σᵢ conv(x; Wᵢ, bᵢ, gᵢ) = conv(x; blocks_g(Σᵢ dense(Wᵢ) centred), Σᵢ bᵢ, g), "
            "g = gcd(gᵢ) or any multiple every dense(Wᵢ) is block-diagonal for"
        ),
        preconditions=(
            SAME_INPUT,
            SAME_IN_CHANNELS,
            SAME_OUT_CHANNELS,
            SAME_STRIDE,
            SAME_DILATION,
            SAME_PADDING_MODE,
            EVEN,
            ONE_PADDING,
            COMMON_BLOCKS,
            TORCH_MODULES,
            NONEMPTY,
        ),
        transform=merge_grouped_branches,
        proof="proofs.rules.merge_grouped_branches",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
